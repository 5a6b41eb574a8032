"""Which samples fidelity is judged on: DATA split into calibration and held-out samples, or
seeded random inputs when there is no DATA. `compile` and `verify OUTDIR` both split the
same way, so `verify` judges a compile's own DATA on the samples compile held out."""

from __future__ import annotations

from typing import Any

import numpy as np

EVAL_EVERY = 4          # with DATA, every 4th sample is held out for fidelity (not calibrated on)
EVAL_MIN = 256          # ... but at least this many once DATA has 2 x EVAL_MIN samples
MIN_SPLIT = 8           # fewer samples than this: fidelity is measured on the calibration samples
RANDOM_SAMPLES = 4      # seeded random inputs for the output check when there is no DATA
RANDOM_SEED = 0


def split_data(arrays: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray],
                                                       dict[str, Any]]:
    """(calibration, evaluation, what the manifest says): fidelity is measured on held-out
    samples recovery and int8 never saw. A quarter of DATA (every EVAL_EVERY-th sample) is held
    out, and at least EVAL_MIN samples when DATA has 2 x EVAL_MIN or more (a 95% interval of
    about ±6 points instead of ±20 on 16), spread evenly over DATA; the rest calibrate."""
    n = len(next(iter(arrays.values())))
    if n < MIN_SPLIT:
        return arrays, arrays, {"samples": n, "calibration": n, "evaluation_samples": n,
                                "evaluation": "calibration samples (too few to hold out)"}
    held = np.arange(n) % EVAL_EVERY == EVAL_EVERY - 1
    if n >= 2 * EVAL_MIN and held.sum() < EVAL_MIN:
        # the last sample of each of EVAL_MIN equal stretches of DATA
        held = np.zeros(n, bool)
        held[(np.arange(1, EVAL_MIN + 1) * n) // EVAL_MIN - 1] = True
    return ({k: v[~held] for k, v in arrays.items()}, {k: v[held] for k, v in arrays.items()},
            {"samples": n, "calibration": int((~held).sum()), "evaluation": "held-out",
             "evaluation_samples": int(held.sum())})


def random_samples(model, n: int = RANDOM_SAMPLES, seed: int = RANDOM_SEED) -> dict[str, np.ndarray]:
    """Seeded standard-normal inputs shaped like `model`'s (a frontend Model): enough to
    check an artifact computes what its model does, never to judge fidelity."""
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal((n, *shape[1:])).astype(np.float32)
            for name, shape in model.input_shapes.items()}


def random_kind() -> str:
    """How the manifest and `verify` name the inputs of a check without DATA."""
    return f"random (seed {RANDOM_SEED}, {RANDOM_SAMPLES} samples): no DATA"
