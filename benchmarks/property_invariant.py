"""Run the pruning invariant on many random graphs and print every failure.

    .venv/bin/python benchmarks/property_invariant.py [--n 1000] [--seed 0] [--source torch|onnx|both]

Each example: a random small CNN (tests/property/netgen.py, exported from torch) or a random
graph written with onnx.helper (tests/property/onnxgen.py: op forms torch never emits,
opsets 11-18), analysed and pruned with a random subset of whole atoms per prunable group; the pruned model must equal
the original with the removed channels zeroed where consumed (rtol 1e-4), with fewer
parameters and MACs. Prints the number of mismatches (the target is 0) and, for each, the
spec that reproduces it.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
import onnx  # noqa: E402

from edgeprune.frontend.load import load_model_bytes  # noqa: E402
from edgeprune.graph import analyze  # noqa: E402
from tests.helpers import assert_invariant, export  # noqa: E402
from tests.property.netgen import RandomNet, input_shape, random_keep, specs  # noqa: E402
from tests.property.onnxgen import graphs, input_shapes  # noqa: E402


@st.composite
def models(draw, source: str, max_ops: int):
    """(description, Model) from the chosen generator(s)."""
    if source == "both":
        source = draw(st.sampled_from(["torch", "onnx"]))
    if source == "torch":
        spec = draw(specs(max_ops=max_ops))
        return repr(spec), export(RandomNet(spec), input_shape(spec))
    opset, proto = draw(graphs(max_ops=max_ops))
    return f"onnx opset {opset}:\n{onnx.printer.to_text(proto.graph)}", \
        load_model_bytes(proto.SerializeToString(), name=f"random-opset{opset}", input_shapes=input_shapes(proto))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="number of random graphs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-ops", type=int, default=8)
    ap.add_argument("--source", choices=["torch", "onnx", "both"], default="both")
    args = ap.parse_args()

    failures: list[tuple[str, str]] = []
    stats = collections.Counter()

    @seed(args.seed)
    @settings(max_examples=args.n, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(drawn=models(args.source, args.max_ops), data=st.data())
    def run(drawn, data):
        stats["graphs"] += 1
        spec, model = drawn
        analysis = analyze(model)
        keep = data.draw(random_keep(analysis))
        stats["prunable groups"] += len(analysis.prunable())
        stats["frozen groups"] += len(analysis.groups) - len(analysis.prunable())
        stats["pruned groups"] += len(keep)
        try:
            assert_invariant(model, keep, analysis=analysis)
        except Exception as e:  # every failure is reported, none stops the run
            first = (str(e).strip().splitlines() or [""])[0]
            failures.append((f"{type(e).__name__}: {first}", f"{spec}\n    keep={keep}"))

    start = time.perf_counter()
    run()
    elapsed = time.perf_counter() - start
    print(f"graphs: {stats['graphs']}  prunable groups: {stats['prunable groups']}  "
          f"frozen groups: {stats['frozen groups']}  pruned groups: {stats['pruned groups']}  "
          f"time: {elapsed:.1f}s")
    kinds = collections.Counter(kind for kind, _ in failures)
    for kind, count in kinds.most_common():
        example = next(s for k, s in failures if k == kind)
        print(f"\n[{count}x] {kind}\n    {example}")
    print(f"\nmismatches: {len(failures)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
