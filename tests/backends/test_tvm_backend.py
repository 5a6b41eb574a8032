"""TVM backend: targets from profiles, linking or .tar, OpenCL kernels, host outputs vs ORT."""

from __future__ import annotations

import json
import shutil
import tarfile

import pytest

from edgeprune.backends.base import Artifact, TargetSpec
from edgeprune.backends.emulation import emulation_available, ensure_host_tools
from edgeprune.backends.tvm import TvmBackend, run_on_host
from edgeprune.backends.tvm_target import linker_for, target_dict
from edgeprune.backends.verify import compare, random_inputs, reference_outputs
from edgeprune.devices.profile import load_profile
from edgeprune.errors import UsageError

ELF_MACHINE_AARCH64 = 183


def elf_machine(path) -> int:
    head = path.read_bytes()[:20]
    assert head[:4] == b"\x7fELF"
    return int.from_bytes(head[18:20], "little")


def test_host_library_matches_onnx_runtime(tiny_model, tmp_path):
    art = TvmBackend().compile(tiny_model, TargetSpec(), tmp_path)

    assert art.files["model"] == "model.so" and art.notes["export"]["format"] == "so"
    assert art.notes["host_check"]["ok"]
    feeds = random_inputs(art.inputs, seed=3)
    cmp = compare(run_on_host(Artifact.load(tmp_path, "tvm"), feeds),
                  reference_outputs(tiny_model.proto, feeds), atol=1e-4)
    assert cmp.ok, cmp


def test_host_target_names_this_cpu():
    """Without -mcpu LLVM emits baseline SSE2 code."""
    d = target_dict({"kind": "llvm"})
    assert d["mcpu"] and d["num-cores"] >= 1


def test_aarch64_targets_get_neon_and_dotprod_for_int8():
    d = target_dict({"kind": "llvm", "mtriple": "aarch64-linux-gnu"}, int8=True)
    assert d["mattr"] == ["+neon", "+dotprod"]
    assert "+dotprod" not in target_dict({"kind": "llvm", "mtriple": "aarch64-linux-gnu"})["mattr"]


@pytest.fixture
def cross_gcc():
    if not shutil.which("aarch64-linux-gnu-gcc") and emulation_available() is None:
        ensure_host_tools()  # root on Debian, as in CI
    if not shutil.which("aarch64-linux-gnu-gcc"):
        pytest.skip("needs Debian's gcc-aarch64-linux-gnu (runtimes/emulation/host_tools.sh)")


def test_linux_arm_profile_links_an_aarch64_shared_library(tiny_model, tmp_path, cross_gcc):
    spec = TargetSpec.from_profile(load_profile("raspberry-pi-5"))
    art = TvmBackend().compile(tiny_model, spec, tmp_path)

    assert art.target["triple"] == "aarch64-linux-gnu"
    assert art.target["tvm"]["mcpu"] == "cortex-a76"
    assert art.notes["export"]["compiler"].endswith("aarch64-linux-gnu-gcc")
    assert elf_machine(art.path("model")) == ELF_MACHINE_AARCH64
    assert art.run["options"]["inputs"] == [["input", [1, 3, 32, 32], "float32"]]
    assert "host_check" not in art.notes  # it cannot run here; tests/backends/test_emulation.py runs it


def test_android_without_ndk_exports_a_tar_and_says_why(tiny_model, tmp_path, monkeypatch):
    monkeypatch.delenv("ANDROID_NDK_HOME", raising=False)
    spec = TargetSpec.from_profile(load_profile("pixel-7"))
    art = TvmBackend().compile(tiny_model, spec, tmp_path)

    assert art.files["model"] == "model.tar"
    assert art.notes["export"]["format"] == "tar" and "ANDROID_NDK_HOME" in art.notes["export"]["reason"]
    with tarfile.open(art.path("model")) as tar:
        assert any(n.endswith(".o") for n in tar.getnames())


def test_android_ndk_clang_is_used_when_present(tmp_path, monkeypatch):
    bins = tmp_path / "toolchains" / "llvm" / "prebuilt" / "linux-x86_64" / "bin"
    bins.mkdir(parents=True)
    for api in (24, 28, 33):
        (bins / f"aarch64-linux-android{api}-clang").write_text("")
    monkeypatch.setenv("ANDROID_NDK_HOME", str(tmp_path))
    linker = linker_for("aarch64-linux-android")
    assert linker.format == "so" and linker.compiler.endswith("aarch64-linux-android28-clang")


@pytest.mark.parametrize("profile", ["snapdragon-8-gen2", "pixel-7"])
def test_opencl_artifact_for_adreno_and_mali_holds_generated_kernels(tiny_model, tmp_path, profile):
    spec = TargetSpec.from_profile(load_profile(profile))
    gpu = {"snapdragon-8-gen2": "adreno", "pixel-7": "mali"}[profile]
    tvm = dict(spec.tvm) if spec.tvm["kind"] == "opencl" else {"kind": "opencl", "device": gpu}
    spec = TargetSpec(name=spec.name, tvm=tvm)
    art = TvmBackend().compile(tiny_model, spec, tmp_path)

    assert art.target["tvm"]["kind"] == "opencl" and art.target["tvm"]["device"] == gpu
    assert art.target["triple"] == "aarch64-linux-android"
    assert art.run["options"]["device"] == "opencl"
    kernels = art.path("kernels").read_text()
    assert kernels.count("__kernel void") >= 4  # convolutions, pooling, the classifier
    assert "get_group_id" in kernels or "get_local_id" in kernels  # GPU-scheduled, not serial
    saved = json.loads((tmp_path / "tvm.artifact.json").read_text())
    assert saved["files"]["kernels"] == "kernels.cl"


def test_unknown_option_and_bad_target_are_usage_errors(tiny_model, tmp_path):
    with pytest.raises(UsageError, match="tuning_trails"):
        TvmBackend().compile(tiny_model, TargetSpec(), tmp_path, {"tuning_trails": 5})
    with pytest.raises(UsageError, match="TVM rejects target"):
        TvmBackend().compile(tiny_model, TargetSpec(name="bad", tvm={"kind": "llvm", "mcpu": 7}), tmp_path)
