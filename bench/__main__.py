"""`python -m bench <name> [options]`: run one benchmark and print its figures.

Names: relay, latency, startup, scale, store, peers, hotpath, profile; `all` runs the first
seven one after the other and ends with the table of every target (bench/targets.py) from
that run; `all --quick` runs fewer rounds (5-10 minutes here). `python -m bench <name> -h`
lists the options of each. They are measurements, not tests: nothing here asserts a time.
"""

from __future__ import annotations

import importlib
import sys
import time

BENCHES = {
    "relay": "bench.relay",
    "latency": "bench.latency",
    "startup": "bench.startup",
    "scale": "bench.scale",
    "store": "bench.store",
    "peers": "bench.peers",
    "profile": "bench.profile",
    "hotpath": "bench.hotpath",
}


# What `python -m bench all` runs, in this order (each with its defaults).
ALL = ["relay", "latency", "startup", "scale", "store", "hotpath", "peers"]
# `all --quick`: fewer rounds, the targets' figures only (no hotpath, no PostgreSQL).
QUICK = {
    "relay": ["-r", "5"],
    "latency": ["-n", "1000"],
    "startup": ["-r", "7", "--only", "bridge,bridge-bare,bridge-native,python,codex-acp,claude-acp"],
    "scale": [],
    "store": ["-n", "60000", "-r", "1", "--batches", "2000", "--backends", "sqlite"],
    "peers": ["-r", "3"],
}


def run_all(quick: bool) -> int:
    from bench import common as C
    from bench.targets import Figures, evaluate

    t0 = time.perf_counter()
    figures: Figures = {}
    for name in QUICK if quick else ALL:
        got = importlib.import_module(BENCHES[name]).main(QUICK[name] if quick else [])
        if isinstance(got, dict):
            figures.update(got)
        print(flush=True)
    C.header(
        f"issue 17 targets, from this run ({'quick' if quick else 'full'}, {time.perf_counter() - t0:.0f} s)"
    )
    rows = evaluate(figures)
    print(C.table([r.cells() for r in rows], ["target", "measured", "limit", "met", "load"]))
    met = sum(1 for r in rows if r.met)
    print(f"   {met}/{len(rows)} met; {C.load()} at end")
    return 0


ALL_HELP = """usage: python -m bench all [--quick]

Runs relay, latency, startup, scale, store, hotpath and peers one after the other (~25 min
here), then prints the table of every issue 17 target from that run.
  --quick   fewer rounds, no hotpath and no PostgreSQL (~5 min)"""


def main(argv: list[str]) -> int:
    if argv and argv[0] == "all":
        rest = argv[1:]
        if any(a in ("-h", "--help") for a in rest):
            print(ALL_HELP)
            return 0
        unknown = [a for a in rest if a != "--quick"]
        if unknown:
            # An unknown option must not start a 25-minute run.
            print(f"bench all: unknown option(s) {' '.join(unknown)}\n\n{ALL_HELP}", file=sys.stderr)
            return 2
        return run_all("--quick" in rest)
    if not argv or argv[0] not in BENCHES:
        print(__doc__.strip())
        return 2
    importlib.import_module(BENCHES[argv[0]]).main(argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
