"""TVM tuned on the device against TVM untuned, both timed on an emulated aarch64 board that
joined a loopback TVM RPC tracker (runtimes/emulation/rpc_board.sh), side by side in one run.

MetaSchedule's candidates are built and linked on this host and timed on the board; the tuned
library applies the board target's database. The board is qemu: its timings prove that the
mechanics work (candidates measured there, records reused), not how fast a real board is.

    .venv/bin/python benchmarks/tvm_rpc_tuning.py [--trials 32] [--repeats 10]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from edgeprune.backends.base import TargetSpec  # noqa: E402
from edgeprune.backends.emulation import emulation_available, ensure_host_tools  # noqa: E402
from edgeprune.backends.tvm import TvmBackend  # noqa: E402
from edgeprune.devices.base import BenchTask  # noqa: E402
from edgeprune.devices.open import open_device  # noqa: E402
from edgeprune.devices.profile import load_profile_file  # noqa: E402
from edgeprune.frontend.export import export_module  # noqa: E402
from tests.devices.rpc_pool import RpcPool  # noqa: E402

TARGET = '{ kind = "llvm", mtriple = "aarch64-linux-gnu", mattr = ["+neon"] }'


class TwoConvs(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU())

    def forward(self, x):
        return self.body(x)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=32, help="MetaSchedule trials (per task too)")
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    why = emulation_available()
    if why:
        print(f"no emulated board here: {why}")
        return 1
    ensure_host_tools()
    with tempfile.TemporaryDirectory(prefix="rpc-tuning-") as tmp, RpcPool(Path(tmp) / "pool", "emulated-aarch64",
                                                                           emulated=True) as pool:
        tmp = Path(tmp)
        profile = load_profile_file(pool.profile(tmp / "board.toml", arch="aarch64", target=TARGET))
        torch.manual_seed(0)
        model = export_module(TwoConvs().eval(), (1, 16, 16, 16), tmp / "m.onnx")
        spec = TargetSpec.from_profile(profile)
        base = {"check": False, "tuning_cache": tmp / "tuning"}
        untuned = TvmBackend().compile(onnx.load(str(model)), spec, tmp / "untuned", base)
        pool.wait_free(300)
        tuned = TvmBackend().compile(onnx.load(str(model)), spec, tmp / "tuned",
                                     {**base, "tuning_trials": args.trials, "tuning_trials_per_task": args.trials,
                                      "tuning_rpc": pool.spec.removeprefix("rpc:")})
        note = tuned.notes["tuning"]
        print(f"tuning: {note['tasks']} tasks, tuned {len(note['tuned'])} on {note.get('timed_on')}, "
              f"{args.trials} trials, {note['seconds']:.0f} s")
        (name, shape, _), = untuned.run["options"]["inputs"]
        np.savez(tmp / "x.npz", **{name: np.random.default_rng(0).standard_normal(shape).astype(np.float32)})
        pool.wait_free(300)
        device = open_device(str(profile.path))
        try:
            # interleaved, twice each: the board's (the host's) load moves both alike
            tasks = [BenchTask(id=f"{name}|{k}", model=art.path("model"), backend="tvm", inputs=tmp / "x.npz",
                               warmup=2, repeats=args.repeats, min_seconds=0.0, options=dict(art.run["options"]))
                     for k in range(2) for name, art in (("untuned", untuned), ("tuned", tuned))]
            results = device.measure(tasks)
        finally:
            device.close()
        best: dict[str, float] = {}
        for r in results:
            if not r.ok:
                print(f"{r.id}: failed: {r.error}")
                return 1
            name = r.id.split("|")[0]
            best[name] = min(best.get(name, float("inf")), r.median_ms)
        print(f"{'library':10} {'median ms (emulated)':>22}")
        for name in ("untuned", "tuned"):
            print(f"{name:10} {best[name]:22.2f}")
        print(f"tuned / untuned: {best['tuned'] / best['untuned']:.2f}x the time")
        print("The board is qemu-user on this host: these timings show that candidates were measured on the "
              "board and their records applied, not the speed of a real aarch64 board.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
