"""Interpolation of one signature's measured (c_in, c_out) grid, respecting the staircase.

On ONNX Runtime's CPU kernels a channel count that is not a multiple of the device's
channel step runs at the cost of the next multiple (or worse): latency is a staircase in the
channel counts, smooth only along the multiples of the step. So a query is first rounded
*up* to the step (unless that exact count was measured), then interpolated bilinearly between
the measured multiples that bracket it — never across an unaligned knot. Bilinear is exact
for cost a + b·c_in + c·c_out + d·c_in·c_out, which is what a convolution's work is.
"""

from __future__ import annotations

import bisect
import math


class LutMiss(LookupError):
    """A query outside what the LUT measured; `.points` lists (c_in, c_out) that would answer it."""

    def __init__(self, sig: str, c_in: int, c_out: int, points: list[tuple[int, int]]):
        super().__init__(f"no LUT entry near {sig} c_in={c_in} c_out={c_out}")
        self.sig, self.c_in, self.c_out, self.points = sig, c_in, c_out, points


class Axis:
    def __init__(self, values, step: int):
        self.values = sorted(set(values))
        self.step = step
        self.exact = set(self.values)
        # knots for interpolation: aligned values, plus the ends (the dense count may be unaligned)
        self.knots = sorted({v for v in self.values if v % step == 0} | {self.values[0], self.values[-1]})

    def landing(self, q: int) -> int:
        """The count a query for q is answered at: q itself when measured or aligned, else the
        next multiple of the step (the staircase)."""
        if q in self.exact or q % self.step == 0:
            return q
        up = -(-q // self.step) * self.step
        return up if up <= self.values[-1] else q

    def bracket(self, q: int) -> list[tuple[int, float]]:
        """[(knot, weight)] whose weighted sum answers q; raises KeyError when q is outside."""
        if q in self.exact:
            return [(q, 1.0)]
        if q % self.step:
            q = -(-q // self.step) * self.step
            if q in self.exact:
                return [(q, 1.0)]
        i = bisect.bisect_left(self.knots, q)
        if i == 0 or i >= len(self.knots):
            raise KeyError(q)
        lo, hi = self.knots[i - 1], self.knots[i]
        w = (q - lo) / (hi - lo)
        return [(lo, 1.0 - w), (hi, w)]


class GridInterpolator:
    """Median latency (and energy, when measured) of one signature at any (c_in, c_out).

    `values` maps (c_in, c_out) -> (ms, mJ or None). A query interpolates along c_out within
    each measured c_in row, then between the two rows that bracket c_in (rows that cannot
    answer the c_out — a lone refinement probe — are skipped). Depthwise layers are
    one-dimensional: their entries have c_in == c_out and queries use c_out.
    """

    def __init__(self, sig: str, values: dict[tuple[int, int], tuple[float, float | None]],
                 step: int, depthwise: bool = False):
        self.sig, self.values, self.depthwise, self.step = sig, values, depthwise, step
        by_row: dict[int, list[int]] = {}
        for ci, co in values:
            by_row.setdefault(co if depthwise else ci, []).append(co)
        self.rows = {ci: Axis(cos, step) for ci, cos in by_row.items()}
        self.diag = Axis(list(by_row), step) if depthwise else None
        self._cache: dict[tuple[int, int], tuple[float, float | None]] = {}

    def __call__(self, c_in: int, c_out: int) -> tuple[float, float | None]:
        key = (c_in, c_out)
        hit = self._cache.get(key)
        if hit is None:
            hit = self._cache[key] = self._lookup(c_in, c_out)
        return hit

    def _terms(self, c_in: int, c_out: int) -> list[tuple[tuple[int, int], float]]:
        if self.depthwise:
            return [((c, c), w) for c, w in self.diag.bracket(c_out)]
        answering = {}
        for ci, row in self.rows.items():
            try:
                answering[ci] = row.bracket(c_out)
            except KeyError:
                continue
        if not answering:
            raise KeyError(c_out)
        return [((ci, co), wi * wo) for ci, wi in Axis(list(answering), self.step).bracket(c_in)
                for co, wo in answering[ci]]

    def points(self, c_in: int, c_out: int) -> list[tuple[int, int]]:
        """The grid points whose values answer (c_in, c_out); raises LutMiss off the grid."""
        if self.depthwise:
            c_in = c_out
        try:
            return [point for point, _ in self._terms(c_in, c_out)]
        except KeyError:
            raise LutMiss(self.sig, c_in, c_out, [(c_in, c_out)]) from None

    def landing(self, c_in: int, c_out: int) -> tuple[int, int]:
        """The one point that would answer (c_in, c_out) on its own once measured: the query on
        the staircase, as the interpolation rounds it."""
        if self.depthwise:
            c = self.diag.landing(c_out)
            return c, c
        cos = [co for row in self.rows.values() for co in row.values]
        return Axis(list(self.rows), self.step).landing(c_in), Axis(cos, self.step).landing(c_out)

    def _lookup(self, c_in: int, c_out: int):
        if self.depthwise:
            c_in = c_out
        try:
            terms = self._terms(c_in, c_out)
        except KeyError:
            raise LutMiss(self.sig, c_in, c_out, [(c_in, c_out)]) from None
        ms, mj, mj_ok = 0.0, 0.0, True
        for point, w in terms:
            v = self.values[point]
            ms += w * v[0]
            if v[1] is None:
                mj_ok = False
            else:
                mj += w * v[1]
        if not math.isfinite(ms):
            raise LutMiss(self.sig, c_in, c_out, [(c_in, c_out)])
        return ms, (mj if mj_ok else None)
