"""Check aarch64 artifacts by running them under emulation.

The artifacts' files and the inputs go into one runner job; `runtimes/emulation/run_job.sh`
runs it with the device runner inside an arm64 root filesystem under qemu-user-static; the
saved outputs are compared with ONNX Runtime fp32 on the host. Needs root (chroot) and
Debian's package tools (the script installs what it lacks).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import onnx

from ..errors import DeviceError
from .base import Artifact
from .. import locations
from .verify import Comparison, compare, reference_outputs

EMULATION_DIR = locations.runtimes_dir() / "emulation"


def emulation_available() -> str | None:
    """None when emulated runs can work here, else why not."""
    if sys.platform != "linux":
        return "emulation needs Linux"
    if os.geteuid() != 0:
        return "emulation needs root (mmdebstrap --mode=root, chroot)"
    if not (EMULATION_DIR / "run_job.sh").exists():
        return f"{EMULATION_DIR / 'run_job.sh'} is missing"
    if not shutil.which("apt-get") and not shutil.which("qemu-aarch64-static"):
        return "no qemu-aarch64-static and no apt-get to install it"
    return None


def ensure_host_tools() -> None:
    """Install (once) the host's Debian packages for cross-linking and emulation, so an
    aarch64 library is linked as a .so rather than left as a .tar."""
    proc = subprocess.run(["bash", str(EMULATION_DIR / "host_tools.sh")], capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise DeviceError(f"installing the emulation host tools failed: {tail}")


def run_emulated(artifacts: Sequence[Artifact], inputs: Mapping[str, np.ndarray],
                 timeout_s: float = 900) -> dict[str, dict[str, np.ndarray]]:
    """Each artifact's outputs on `inputs`, computed by the runner under aarch64 emulation.
    Keyed by `artifact.backend`."""
    with tempfile.TemporaryDirectory(prefix="edgeprune-emu-") as tmp:
        job_dir = Path(tmp)
        np.savez(job_dir / "inputs.npz", **inputs)
        tasks = []
        for a in artifacts:
            model = f"{a.backend}/{a.run['model']}"
            (job_dir / a.backend).mkdir()
            shutil.copy2(a.root / a.run["model"], job_dir / model)
            tasks.append({"id": a.backend, "backend": a.run["backend"], "model": model,
                          "inputs": "inputs.npz", "threads": 1, "warmup": 0, "repeats": 1,
                          "min_seconds": 0, "save_outputs": f"out/{a.backend}.npz",
                          "options": a.run["options"]})
        job = {"version": 1, "results": "results.jsonl", "tasks": tasks}
        (job_dir / "job.json").write_text(json.dumps(job))
        # the scripts keep their root filesystem in the user cache (locations.py), run through
        # bash: an installed package may not keep the executable bit
        env = dict(os.environ, PYTHON=sys.executable, EDGEPRUNE_CACHE=str(locations.cache_dir()))
        try:
            proc = subprocess.run(["bash", str(EMULATION_DIR / "run_job.sh"), str(job_dir / "job.json")],
                                  capture_output=True, text=True, timeout=timeout_s, env=env)
        except subprocess.TimeoutExpired:
            raise DeviceError(f"emulated run timed out after {timeout_s:.0f} s") from None
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise DeviceError(f"emulated run failed (exit {proc.returncode}): {tail}")
        results = {}
        for line in (job_dir / "results.jsonl").read_text().splitlines():
            rec = json.loads(line)
            results[rec["id"]] = rec
        outputs = {}
        for a in artifacts:
            rec = results.get(a.backend)
            if not rec or not rec.get("ok"):
                raise DeviceError(f"{a.backend} artifact failed under emulation: "
                                  f"{(rec or {}).get('error', 'no result line')}")
            with np.load(job_dir / rec["outputs"]) as data:
                outputs[a.backend] = {k: data[k] for k in data.files}
        return outputs


def verify_emulated(artifacts: Sequence[Artifact], proto: onnx.ModelProto,
                    inputs: Mapping[str, np.ndarray], atol: float = 1e-4) -> dict[str, Comparison]:
    """Every artifact's emulated outputs against the host's ONNX Runtime fp32 reference."""
    reference = reference_outputs(proto, inputs)
    outputs = run_emulated(artifacts, inputs)
    return {backend: compare(outs, reference, atol) for backend, outs in outputs.items()}
