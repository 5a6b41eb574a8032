"""What the fault and concurrency tests run: a quick device profile of this machine (fixed
channel step, few repeats), small ONNX models with distinct layer signatures, `profile` and
`compile` command lines, killing a run's whole process group, and checking an artifact."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from tests.host_profile import write_host_profile

REPO = Path(__file__).resolve().parents[2]


def write_quick_profile(folder: Path) -> Path:
    """The host profile timed briefly: a LUT in seconds, not minutes."""
    return write_host_profile(folder, "quickhost", tvm=False, warmup=1, repeats=3, min_seconds=0.0)


def conv_chain(path: Path, size: int, widths: list[int], kernels: list[int]) -> Path:
    """x -> Conv(k_i) -> Relu ... : one conv signature per (kernel, spatial size)."""
    rng = np.random.default_rng(size)
    nodes, inits, prev, c = [], [], "x", 3
    for i, (w, k) in enumerate(zip(widths, kernels)):
        inits.append(numpy_helper.from_array(rng.standard_normal((w, c, k, k)).astype(np.float32), f"w{i}"))
        nodes.append(helper.make_node("Conv", [prev, f"w{i}"], [f"c{i}"], name=f"conv{i}",
                                      pads=[k // 2] * 4))
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"], name=f"relu{i}"))
        prev, c = f"r{i}", w
    graph = helper.make_graph(nodes, path.stem,
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, size, size])],
                              [helper.make_tensor_value_info(prev, TensorProto.FLOAT, [1, c, size, size])],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return path


def profile_command(profile: Path, lut: Path, *models: Path, resume: bool = False) -> list[str]:
    cmd = [sys.executable, "-m", "edgeprune", "profile", "--device", str(profile), "-o", str(lut)]
    for m in models:
        cmd += ["--model", str(m)]
    return cmd + (["--resume"] if resume else [])


def start(cmd: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def raw_entries(lut: Path) -> list[dict]:
    return json.loads(lut.read_text())["entries"]


def duplicated_keys(lut: Path) -> list[tuple]:
    counts = Counter((e["sig"], e["c_in"], e["c_out"]) for e in raw_entries(lut))
    return [k for k, n in counts.items() if n > 1]


def run_and_kill(cmd: list[str], ready, timeout: float = 600) -> bool:
    """Start `cmd` in its own process group and SIGKILL the whole group (runner children
    included) as soon as `ready()` holds. False if the run finished first."""
    import os
    import signal
    import time

    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if ready():
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return True
            time.sleep(0.005)
        return False
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def copy_files(src: Path, dst: Path, *names: str) -> Path:
    import shutil

    for name in names:
        shutil.copy(src / name, dst / name)
    return dst


def compile_setup(folder: Path) -> Path:
    """quickhost.toml, model.onnx (two 3x3 convs) and its complete lut.json in `folder`."""
    profile = write_quick_profile(folder)
    model = conv_chain(folder / "model.onnx", 16, [32, 32], [3, 3])
    p = subprocess.run(profile_command(profile, folder / "lut.json", model), cwd=REPO,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    make_monotone(folder / "lut.json")
    return folder


def make_monotone(lut: Path) -> None:
    """Make every entry at least as slow as any entry with fewer channels of the same
    signature. Timings of layers this small are noise, and these tests are about files and
    exit codes, not about how the planner copes with noise (test_luts_and_budgets.py does)."""
    doc = json.loads(lut.read_text())
    entries = sorted(doc["entries"], key=lambda e: (e["sig"], e["c_in"], e["c_out"]))
    for e in entries:   # sorted: every entry with fewer channels is already raised
        for key in ("median_ms", "p90_ms"):
            floor = max([r[key] for o in entries if o["sig"] == e["sig"] and o is not e
                         and o["c_in"] <= e["c_in"] and o["c_out"] <= e["c_out"] for r in o["runs"]],
                        default=0.0)
            for r in e["runs"]:
                r[key] = max(r[key], floor)
    lut.write_text(json.dumps(doc))


# Budgets these tests give are absolute and above the dense latency: on a model this small
# a relative one (0.9x) is reachable or not depending on timing noise in the measured LUT,
# and these tests are about files and signals, not about planning.
BUDGETS = ("1000ms", "900ms")


def compile_command(work: Path, budget: str = BUDGETS[0]) -> list[str]:
    return [sys.executable, "-m", "edgeprune", "compile", str(work / "model.onnx"), "--target",
            str(work / "quickhost.toml"), "--lut", str(work / "lut.json"), "--budget", budget,
            "-o", str(work / "out"), "--quiet"]


def assert_complete(outdir: Path) -> dict:
    """Every file of the artifact is listed in its manifest with the right sha256, and
    nothing else is there."""
    from edgeprune.outdir import sha256_file

    manifest = json.loads((outdir / "manifest.json").read_text())
    on_disk = {p.relative_to(outdir).as_posix() for p in outdir.rglob("*") if p.is_file()} - {"manifest.json"}
    assert on_disk == set(manifest["files"])
    for name, digest in manifest["files"].items():
        assert sha256_file(outdir / name) == digest, name
    return manifest


def staging_folders(work: Path) -> list[Path]:
    return [p for p in work.iterdir() if p.name.startswith(".out.edgeprune-")]
