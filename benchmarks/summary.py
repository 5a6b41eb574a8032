"""Merge the output of several `benchmarks/peers.py` runs into one RESULTS.md.

On a shared 2-core machine one run of every part can outlast a working session, so the
parts may run as separate, concurrent invocations (each model family still timed side by
side within its own run). This reads what they printed or wrote — their markdown tables,
their extra sections, their command and machine lines — and writes one document with every
run's command, re-deriving each budget's verdict with peers.py's current rule. It copies
numbers; it measures nothing and invents nothing.

    .venv/bin/python benchmarks/summary.py RUN.md|RUN.out ... -o benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers import METHODS, ModelRun, Row, int8_table, mac_table, tables, write_atomic  # noqa: E402

NOTE = re.compile(r"(misses the budget[^;|]*|infeasible by the LUT[^;|]*)")


def _num(cell: str) -> float:
    """A table cell's number; an agreement's Wilson interval after it is dropped."""
    try:
        return float(cell.split(" [", 1)[0])
    except ValueError:
        return float("nan")


def parse_runs(text: str) -> list[ModelRun]:
    """The model families of one peers.py output, from its comparison and int8 tables."""
    runs: dict[str, ModelRun] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 11 and cells[1] == "dense" and cells[0].startswith("**"):
            name = cells[0].strip("*")
            fid, kind = cells[5].split(" ", 1)
            views = re.search(r" on (\d+) views", kind)
            runs[name] = ModelRun(name, float(cells[3]), float("nan"), kind.strip("()").split(" on ")[0], float(fid),
                                  n_eval=int(views.group(1)) if views else 0)
        elif len(cells) == 11 and cells[0] in runs and cells[6].endswith("x"):   # int8, one row per method
            run = runs[cells[0]]
            run.int8_budget = float(cells[1].rstrip("x"))
            run.int8[cells[2].strip("*")] = {"fp32_ms": float(cells[3]), "int8_ms": float(cells[4]),
                                             "fp32_fid": _num(cells[7]), "int8_fid": _num(cells[8])}
        elif len(cells) == 11 and cells[2].strip("*") in METHODS and cells[0] in runs:
            note = NOTE.search(cells[10])
            runs[cells[0]].rows.append(Row(
                cells[0], float(cells[1].rstrip("x")), cells[2].strip("*"), ms=_num(cells[3]), x=_num(cells[4]),
                fidelity=_num(cells[5]), before_recon=_num(cells[6]), macs=_num(cells[7]),
                tries=int(cells[9] or 0), note=note.group(1).strip() if note else ""))
    return list(runs.values())


def sections(text: str) -> dict[str, str]:
    """A peers.py markdown document's `## ` sections by title (bodies verbatim)."""
    out = {}
    for part in text.split("\n## ")[1:]:
        title, _, body = part.partition("\n")
        out[title.strip()] = body.strip()
    return out


def header_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("- ")][:5]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("inputs", nargs="+", type=Path, help="peers.py markdown (--write) or captured stdout")
    ap.add_argument("-o", "--output", type=Path, required=True)
    ap.add_argument("--notes", type=Path, help="markdown placed after the run list (reading of the results)")
    ap.add_argument("--command", action="append", default=[], metavar="FILE=COMMAND",
                    help="the command that produced an input which does not say so itself (captured stdout)")
    args = ap.parse_args(argv)

    runs, extra, headers = [], {}, []
    commands = dict(c.split("=", 1) for c in args.command)
    for path in args.inputs:
        text = path.read_text()
        got = parse_runs(text)
        runs += [r for r in got if r.name not in {x.name for x in runs}]
        # a run of the extra parts only: its timing and fidelity settings describe no row
        head = header_lines(text)[:3 if not got else 5] or ([f"- command: `{commands[path.name]}` (its stdout: the model tables)"]
                                      if path.name in commands else [])
        if head:
            headers.append((path.name, head))
        for title, body in sections(text).items():
            if title.startswith(("Latency prediction", "`compile`", "TVM")) and "Not run" not in body:
                extra.setdefault(title, body)
    lines = ["# edgeprune against its peers (host, ONNX Runtime)", "",
             "Merged by `benchmarks/summary.py` from the runs listed below; every number is measured by "
             "`benchmarks/peers.py` on this machine. Each model family's rows come from one run, in which all of "
             "its models were timed side by side in one batch.", ""]
    for name, head in headers:
        lines += [f"Run `{name}`:", *head, ""]
    if args.notes:
        lines += [args.notes.read_text().strip(), ""]
    lines += ["## Pruning at matched latency", "",
              "edgeprune = knapsack over the host LUT + the importance its run names (refit unless its command "
              "says --criterion) + least-squares reconstruction "
              "(`before recon.` = the same plan without it). uniform-l1 = the same keep fraction in every group "
              "by L1 norm (`+recover`: with edgeprune's recovery). tp-* = Torch-Pruning MetaPruner, global pruning, "
              "round_to = channel step (`+bn`: BatchNorm statistics re-estimated on the calibration views; runs "
              "before these rows existed lack them). Nobody fine-tunes. edgeprune loses a budget when a peer within 5% of its "
              "latency is more faithful, a peer is >5% faster and at least as faithful, or a peer meets the "
              "budget (within 5%) where edgeprune misses it, at no less fidelity; such peer rows say **beats edgeprune**.", "",
              *tables(runs), ""]
    lines += mac_table(runs)
    if any(r.int8 for r in runs):
        lines += ["## int8 (static QDQ, ORT), every method's middle-budget model", "", *int8_table(runs), ""]
    for title, body in extra.items():
        lines += [f"## {title}", "", body, ""]
    write_atomic(args.output, "\n".join(lines) + "\n")
    print(f"wrote {args.output}: {len(runs)} model families, {sum(len(r.rows) for r in runs)} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
