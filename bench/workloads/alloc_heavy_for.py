"""alloc_heavy_for: run alloc_heavy.py's loop continuously for SECONDS (chunks of 10,000
iterations), then write the iteration count to --stats FILE if given.  Used by
bench/capture_growth.py.

Usage: python alloc_heavy_for.py SECONDS [--stats FILE]
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from alloc_heavy import main as alloc_heavy  # noqa: E402

CHUNK = 10_000


def run(seconds, stats):
    t0 = time.monotonic()
    end = t0 + seconds
    iterations = 0
    while time.monotonic() < end:
        alloc_heavy(CHUNK)
        iterations += CHUNK
    if stats:
        with open(stats, "w") as f:
            json.dump({"elapsed_s": time.monotonic() - t0, "iterations": iterations}, f)


if __name__ == "__main__":
    args = sys.argv[1:]
    if not args:
        raise SystemExit(__doc__)
    stats = args[args.index("--stats") + 1] if "--stats" in args else ""
    run(float(args[0]), stats)
