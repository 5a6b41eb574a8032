"""Graph edits on the ModelProto with one producer/consumer index (edgeprune.frontend.links)
against the same edits through onnx-graphsurgeon's Graph, side by side.

    .venv/bin/python benchmarks/graph_edits.py [--n 200] [--repeats 5]

1. ResNet-50: the rewrite (prune half of every group) as it is; building the index over the
   proto; `gs.import_onnx`; an import + export round trip (what any gs-based edit pays on
   top of the edit itself); whether that round trip gives back the same bytes.
2. Random graphs (tests/property: torch-exported CNNs and onnx.helper graphs, opsets
   11-18), pruned with random subsets of atoms: the pruned model passed through a gs round
   trip — does it still pass the ONNX checker, compute the same outputs, keep its bytes?
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnx_graphsurgeon as gs  # noqa: E402
from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from onnx_graphsurgeon.logger import G_LOGGER  # noqa: E402

from edgeprune import zoo  # noqa: E402
from edgeprune.frontend.export import export_module  # noqa: E402
from edgeprune.frontend.links import Links  # noqa: E402
from edgeprune.frontend.load import load_model, load_model_bytes  # noqa: E402
from edgeprune.graph import analyze  # noqa: E402
from edgeprune.importance import scores  # noqa: E402
from edgeprune.rewrite import prune, ratio_keep  # noqa: E402
from tests.helpers import export, random_feeds, run  # noqa: E402
from tests.property.netgen import RandomNet, input_shape, random_keep, specs  # noqa: E402
from tests.property.onnxgen import graphs, input_shapes  # noqa: E402


def round_trip(proto: onnx.ModelProto) -> onnx.ModelProto:
    return gs.export_onnx(gs.import_onnx(proto))


def median_s(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def speed(repeats: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = export_module(zoo.get("resnet50"), zoo.input_shape("resnet50"), Path(tmp) / "m.onnx")
        model = load_model(path)
    proto = model.proto
    analysis = analyze(model)
    keep = ratio_keep(analysis, scores(model, analysis, "l1"), 0.5, 8)
    rewrite = median_s(lambda: prune(model, analysis, keep), repeats)
    index = median_s(lambda: Links(proto.graph), repeats)
    imported = median_s(lambda: gs.import_onnx(proto), repeats)
    trip = median_s(lambda: round_trip(proto), repeats)
    back = round_trip(proto)
    same = back.SerializeToString(deterministic=True) == proto.SerializeToString(deterministic=True)
    order = [t.name for t in back.graph.initializer] == [t.name for t in proto.graph.initializer]
    print(f"ResNet-50, {len(proto.graph.node)} nodes, median of {repeats}:")
    print(f"  rewrite (prune 0.5)             {rewrite * 1e3:8.1f} ms")
    print(f"  Links over the proto            {index * 1e3:8.1f} ms")
    print(f"  gs.import_onnx                  {imported * 1e3:8.1f} ms")
    print(f"  gs import + export round trip   {trip * 1e3:8.1f} ms  ({trip / rewrite:.0%} of the rewrite)")
    print(f"  round trip gives the same bytes: {same} (initializer order kept: {order})")


@st.composite
def models(draw):
    if draw(st.booleans()):
        spec = draw(specs(max_ops=8))
        return export(RandomNet(spec), input_shape(spec))
    opset, proto = draw(graphs(max_ops=8))
    return load_model_bytes(proto.SerializeToString(), name=f"random-opset{opset}", input_shapes=input_shapes(proto))


def correctness(n: int) -> None:
    stats = collections.Counter()

    @seed(0)
    @settings(max_examples=n, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(model=models(), data=st.data())
    def check(model, data):
        analysis = analyze(model)
        keep = data.draw(random_keep(analysis))
        pruned = prune(model, analysis, keep)
        stats["graphs"] += 1
        try:
            back = round_trip(pruned.proto)
            onnx.checker.check_model(back)
        except Exception:  # noqa: BLE001  counted, not raised: every graph is tried
            stats["round trip fails or breaks the checker"] += 1
            return
        if back.SerializeToString(deterministic=True) == pruned.proto.SerializeToString(deterministic=True):
            stats["same bytes"] += 1
        feeds = random_feeds(model)
        want, got = run(pruned.proto, feeds), run(back, feeds)
        if all(w.shape == g.shape and np.array_equal(w, g) for w, g in zip(want, got)):
            stats["same outputs"] += 1
        else:
            stats["different outputs"] += 1

    t0 = time.perf_counter()
    check()
    print(f"random pruned graphs through a gs round trip ({time.perf_counter() - t0:.0f} s): "
          + ", ".join(f"{k} {v}" for k, v in stats.items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="random graphs")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    G_LOGGER.severity = G_LOGGER.ERROR
    speed(args.repeats)
    correctness(args.n)


if __name__ == "__main__":
    main()
