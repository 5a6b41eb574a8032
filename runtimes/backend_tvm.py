"""TVM backend for the runner: `load(path, threads, options) -> session`.

Loads a library exported by edgeprune's TVM backend (a shared library linked for this
device) into a Relax VM. The library does not carry input names, so the task's options do,
as the artifact wrote them: `{"device": "cpu"|"opencl", "inputs": [[name, shape, dtype],
...], "outputs": [name, ...]}`.

On the CPU only TVM's runtime is loaded (libtvm_runtime through tvm_ffi), not the `tvm`
Python package: importing that pulls in the whole compiler, 240 MB of library and seconds of
Python on a phone (27 s under qemu, against about 3 s for this path). A GPU device (OpenCL)
goes through `tvm` for its host-to-device copies.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import sys

import numpy as np

ALIGN = 64                 # TVM's allocation alignment, which generated kernels may assume
POOLED_ALLOCATOR = 2       # the Relax VM's allocator kinds: 1 naive, 2 pooled
CPU = 1                    # DLPack's device type of the host CPU


def _runtime():
    # bfloat16/float8 come from ml_dtypes, which tvm_ffi imports when it can; artifacts run
    # here are float32 and int8 only, and its extension takes 15 s to start under qemu
    if "ml_dtypes" not in sys.modules:
        sys.modules["ml_dtypes"] = None
    import tvm_ffi

    spec = importlib.util.find_spec("tvm")
    if spec is None or spec.origin is None:
        raise RuntimeError("the TVM runtime is not installed here (no 'tvm' package)")
    lib_dir = os.path.join(os.path.dirname(spec.origin), "lib")
    for name in ("libtvm_runtime.so", "libtvm_runtime.dylib"):
        if os.path.exists(os.path.join(lib_dir, name)):
            ctypes.CDLL(os.path.join(lib_dir, name), ctypes.RTLD_GLOBAL)
            return tvm_ffi
    raise RuntimeError(f"no libtvm_runtime in {lib_dir}")


def _aligned(array: np.ndarray) -> np.ndarray:
    """A copy of `array` whose data starts on an ALIGN-byte boundary (numpy's own is 16)."""
    buf = np.empty(array.nbytes + ALIGN, np.uint8)
    start = (-buf.ctypes.data) % ALIGN
    out = buf[start:start + array.nbytes].view(array.dtype).reshape(array.shape)
    out[...] = array
    return out


class TvmSession:
    def __init__(self, path: str, threads: int, options: dict):
        if path.endswith(".tar"):
            raise ValueError(f"{os.path.basename(path)} is a .tar of objects: link it for this device "
                             "(the artifact names the compiler) before running it")
        try:
            self._specs = [(n, [int(d) for d in s], str(t)) for n, s, t in options["inputs"]]
            self._outputs = list(options["outputs"])
        except (KeyError, TypeError, ValueError):
            raise ValueError("tvm task options need 'inputs' [[name, shape, dtype], ...] and 'outputs'") from None
        kind = options.get("device", "cpu")
        if kind == "cpu":
            ffi = _runtime()
            self._config_threads(ffi.get_global_func, threads)
            vm = ffi.load_module(path)["vm_load_executable"]()
            vm["vm_initialization"](CPU, 0, POOLED_ALLOCATOR)
            self._main = vm["main"]
            self._tensor = lambda array: ffi.from_dlpack(_aligned(array))
            return
        import tvm
        from tvm import relax

        self._config_threads(tvm.get_global_func, threads)
        dev = tvm.device(kind, 0)
        if not dev.exist:
            raise RuntimeError(f"TVM device '{kind}' is not available in this runtime")
        self._main = relax.VirtualMachine(tvm.runtime.load_module(path), dev)["main"]
        self._tensor = lambda array: tvm.runtime.tensor(array, dev)

    @staticmethod
    def _config_threads(get_global_func, threads: int) -> None:
        if threads > 0:
            # affinity mode 0 = default; must happen before the first parallel launch
            get_global_func("runtime.config_threadpool")(0, int(threads))

    def input_specs(self):
        return list(self._specs)

    def run(self, feeds):
        args = [self._tensor(np.ascontiguousarray(feeds[name], dtype=dtype)) for name, _, dtype in self._specs]
        out = self._main(*args)
        outs = [out] if hasattr(out, "__dlpack__") or hasattr(out, "numpy") else list(out)
        # copies: the VM's pooled allocator may reuse output memory on the next run
        return {name: np.array(o.numpy() if hasattr(o, "numpy") else np.from_dlpack(o))
                for name, o in zip(self._outputs, outs)}


def load(path: str, threads: int = 1, options: dict | None = None) -> TvmSession:
    return TvmSession(path, threads, options or {})
