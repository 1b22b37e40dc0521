"""`python -m bench <name> [options]`: run one benchmark and print its figures.

Names: relay, latency, startup, scale, store, peers, hotpath, profile; `all` runs the first
seven one after the other. `python -m bench <name> -h` lists the options of each.
They are measurements, not tests: nothing here asserts a time.
"""

from __future__ import annotations

import importlib
import sys

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


def main(argv: list[str]) -> int:
    if argv and argv[0] == "all":
        for name in ALL:
            importlib.import_module(BENCHES[name]).main([])
            print(flush=True)
        return 0
    if not argv or argv[0] not in BENCHES:
        print(__doc__.strip())
        return 2
    importlib.import_module(BENCHES[argv[0]]).main(argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
