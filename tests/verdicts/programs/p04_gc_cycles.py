"""Reference cycles with __del__ finalizers, created continuously and collected by the gc.

Models: a parent/child object graph with back-references (and a finalizer that closes a
resource), dropped after each unit of work. Only the cyclic gc can free it; it does.
Live memory is a saw-tooth between collections, with no trend.
Expected verdict: no-leak.

Usage: p04_gc_cycles.py [--duration SECONDS]   (env DURATION too)
"""
import gc
import json
import os
import sys
import time

from workload import arg, paced

PAYLOAD = 4096
PAIRS_PER_TICK = 20
TICK = 0.01


DURATION = float(arg("--duration", os.environ.get("DURATION", "8")))
FINALIZED = [0]


class Connection:
    def __init__(self, name):
        self.name = name
        self.buffer = bytearray(PAYLOAD)  # CYCLE-PAYLOAD
        self.peer = None

    def __del__(self):
        FINALIZED[0] += 1


def work(i):
    a = Connection("client-%d" % i)
    b = Connection("server-%d" % i)
    a.peer, b.peer = b, a            # the cycle
    a.buffer[0] = b.buffer[0] = i & 0xFF
    return len(a.name) + len(b.name)


def main():
    t0 = time.monotonic()
    n = 0
    for _ in paced(DURATION, TICK):
        for _ in range(PAIRS_PER_TICK):
            work(n)
            n += 1
    elapsed = time.monotonic() - t0
    print("summary " + json.dumps({
        "program": "p04_gc_cycles", "pairs": n, "finalized": FINALIZED[0], "gc": gc.get_count(),
        "elapsed_s": round(elapsed, 3), "leak_bytes_per_s": 0}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
