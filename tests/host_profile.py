"""The device profile of this machine that tests measure on, written one way for every test.

A fixed channel step, so no step sweep runs; one thread on the CPU clock, so another test
running beside it moves the figures less; optional short timings (`warmup`, `repeats`,
`min_seconds`, `passes`) where a test only needs a LUT quickly, not a precise one.
"""

from __future__ import annotations

from pathlib import Path


def host_profile(name: str = "testhost", step: int = 8, *, tvm: bool = True, power: str = "detect",
                 **measure: int | float) -> str:
    """The profile's TOML text; `measure` adds keys to its [measure] table."""
    lines = [f'name = "{name}"', 'description = "this machine, for tests"',
             "[reach]", 'kind = "local"',
             "[cpu]", 'arch = "live"', 'cores = "live"',
             "[runtimes.ort]", 'providers = ["CPUExecutionProvider"]']
    if tvm:
        lines += ["[runtimes.tvm]", 'target = { kind = "llvm" }']
    lines += ["[measure]", f"channel_step = {step}", "threads = 1", 'clock = "cpu"']
    lines += [f"{key} = {value}" for key, value in measure.items()]
    lines += ["[power]", f'kind = "{power}"']
    return "\n".join(lines) + "\n"


def write_host_profile(folder: Path, name: str = "testhost", step: int = 8, **kwargs) -> Path:
    """`host_profile(...)` written to FOLDER/NAME.toml."""
    path = Path(folder) / f"{name}.toml"
    path.write_text(host_profile(name, step, **kwargs))
    return path
