"""A memoising lookup whose dict cache is keyed by ever-new keys and never evicts.

Models: `cache[(user, timestamp)] = render(...)` -- the timestamp in the key makes every key
new, so the cache only grows. A few lookups hit (same key twice in a tick).
Expected verdict: leak; site = the line in render_profile that builds the cached value.

Usage: p02_unbounded_cache.py [--duration SECONDS]   (env DURATION too)
"""
import json
import os
import sys
import time

from workload import arg, paced

VALUE_SIZE = 1500       # characters per cached value
LOOKUPS_PER_TICK = 3    # new keys per tick (plus one repeated lookup that hits)
TICK = 0.01


DURATION = float(arg("--duration", os.environ.get("DURATION", "8")))

CACHE = {}
STATS = {"hits": 0, "misses": 0}


def render_profile(user_id, stamp):
    return ("user=%d;stamp=%d;" % (user_id, stamp)).ljust(VALUE_SIZE, ".")  # LEAK-SITE


def lookup(user_id, stamp):
    key = (user_id, stamp)
    value = CACHE.get(key)
    if value is None:
        STATS["misses"] += 1
        value = CACHE[key] = render_profile(user_id, stamp)
    else:
        STATS["hits"] += 1
    return value


def main():
    t0 = time.monotonic()
    total = 0
    for tick in paced(DURATION, TICK):
        stamp = 1_700_000_000_000 + tick  # "milliseconds": a new one every tick
        for u in range(LOOKUPS_PER_TICK):
            total += len(lookup(1000 + u, stamp))
        total += len(lookup(1000, stamp))  # hit
    elapsed = time.monotonic() - t0
    some = next(iter(CACHE.values()))
    print("summary " + json.dumps({
        "program": "p02_unbounded_cache", "entries": len(CACHE), **STATS, "elapsed_s": round(elapsed, 3),
        "leak_bytes_per_s": len(CACHE) * sys.getsizeof(some) / elapsed}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
