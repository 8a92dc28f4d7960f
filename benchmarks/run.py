"""Run every benchmark module and print one table of figures and ratios.

    python benchmarks/run.py [--only NAME ...] [--quick]

Each ``benchmarks/bench_*.py`` exposes ``rows(quick=False)`` returning a list
of ``common.row(...)`` dicts. Needs ``pip install -e .[bench]`` for the peers.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pathlib
import sys
import traceback

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def modules(only):
    names = sorted(p.stem for p in HERE.glob("bench_*.py"))
    if only:
        names = [n for n in names if any(o in n for o in only)]
    return names


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=[], help="substrings of benchmark module names")
    parser.add_argument("--quick", action="store_true", help="fewer repeats and smaller inputs")
    args = parser.parse_args()
    table = []
    for name in modules(args.only):
        print(f"running {name} ...", file=sys.stderr, flush=True)
        try:
            table.extend(importlib.import_module(name).rows(quick=args.quick))
        except Exception as err:  # one broken benchmark must not hide the others
            traceback.print_exc()
            table.append({"benchmark": name, "figure": f"failed: {type(err).__name__}", "target": "",
                          "ok": False, "detail": str(err)[:80]})
    header = ("benchmark", "figure", "target", "ok", "detail")
    cells = [header] + [tuple(str({True: "yes", False: "NO", None: "-"}.get(r[h], r[h])
                                  if h == "ok" else r[h]) for h in header) for r in table]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for c in cells[1:]:
        print("| " + " | ".join(v.ljust(w) for v, w in zip(c, widths)) + " |")


if __name__ == "__main__":
    main()
