"""TVM backend for the runner: `load(path, threads, options) -> session`.

Loads a library exported by edgeprune's TVM backend (a shared library linked for this
device) into a Relax VM. The library does not carry input names, so the task's options do,
as the artifact wrote them: `{"device": "cpu"|"opencl", "inputs": [[name, shape, dtype],
...], "outputs": [name, ...]}`. Imports only numpy and tvm.
"""

from __future__ import annotations

import os

import numpy as np


class TvmSession:
    def __init__(self, path: str, threads: int, options: dict):
        import tvm
        from tvm import relax

        if path.endswith(".tar"):
            raise ValueError(f"{os.path.basename(path)} is a .tar of objects: link it for this device "
                             "(the artifact names the compiler) before running it")
        if threads > 0:
            # affinity mode 0 = default; must happen before the first parallel launch
            tvm.get_global_func("runtime.config_threadpool")(0, int(threads))
        kind = options.get("device", "cpu")
        self._dev = tvm.device(kind, 0)
        if not self._dev.exist:
            raise RuntimeError(f"TVM device '{kind}' is not available in this runtime")
        try:
            self._specs = [(n, [int(d) for d in s], str(t)) for n, s, t in options["inputs"]]
            self._outputs = list(options["outputs"])
        except (KeyError, TypeError, ValueError):
            raise ValueError("tvm task options need 'inputs' [[name, shape, dtype], ...] and 'outputs'") from None
        self._tvm = tvm
        self._vm = relax.VirtualMachine(tvm.runtime.load_module(path), self._dev)
        self._main = self._vm["main"]

    def input_specs(self):
        return list(self._specs)

    def run(self, feeds):
        tensor = self._tvm.runtime.tensor
        args = [tensor(np.ascontiguousarray(feeds[name], dtype=dtype), self._dev)
                for name, _, dtype in self._specs]
        out = self._main(*args)
        outs = [out] if hasattr(out, "numpy") else list(out)
        return {name: o.numpy() for name, o in zip(self._outputs, outs)}


def load(path: str, threads: int = 1, options: dict | None = None) -> TvmSession:
    return TvmSession(path, threads, options or {})
