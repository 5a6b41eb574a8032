"""The analytical energy of some work, for devices without a sensor (and for planning where
the LUT has no measured energy). A leaf module: every stage may use it.

Without a sensor, energy is *estimated* from the work done — every output that shows it says
``estimated``. The constants are Horowitz's 45 nm figures ("Computing's energy problem (and
what we can do about it)", ISSCC 2014, Fig. 1.1.9): FP32 multiply 3.7 pJ + add 0.9 pJ, INT8
multiply 0.2 pJ + add 0.03 pJ, and a 64-bit DRAM access 1.3-2.6 nJ (the low end, per byte).
They give an order of magnitude and the right trend under pruning, not a device's real draw.
"""

from __future__ import annotations

PJ_PER_MAC = {"fp32": 3.7 + 0.9, "int8": 0.2 + 0.03}
PJ_PER_DRAM_BYTE = 1300.0 / 8
ESTIMATE_SOURCE = "estimated (Horowitz ISSCC 2014, 45 nm: pJ per MAC and per DRAM byte)"


def estimate_mj(macs: float, bytes_moved: float, dtype: str = "fp32") -> float:
    """Analytical energy of some work, in millijoules (marked `estimated` wherever shown)."""
    return (macs * PJ_PER_MAC[dtype] + bytes_moved * PJ_PER_DRAM_BYTE) * 1e-9
