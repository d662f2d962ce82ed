"""A bounded functools.lru_cache: fills during the first ~30% of the run, then stays full.

Models: a correctly bounded cache in front of an expensive render. New keys keep arriving
for the whole run, so after the cache is full every miss evicts the oldest entry: memory
grows, then stays flat (a plateau), though the program allocates all the time.
Expected verdict: no-leak, with a "plateau" finding (site: the render line, PLATEAU-SITE).

Usage: p03_lru_plateau.py [--duration SECONDS]   (env DURATION too)
"""
import functools
import json
import os
import sys
import time

from workload import arg, paced

MAXSIZE = 2000
VALUE_SIZE = 4096
FILL_FRACTION = 0.3
TICK = 0.01


DURATION = float(arg("--duration", os.environ.get("DURATION", "8")))


@functools.lru_cache(maxsize=MAXSIZE)
def render_tile(key):
    return (b"%08d" % key) * (VALUE_SIZE // 8)  # PLATEAU-SITE


def main():
    # new keys at a rate that fills the cache after FILL_FRACTION of the run, and keeps coming
    ticks = DURATION / TICK
    new_per_tick = MAXSIZE / (FILL_FRACTION * ticks)
    t0 = time.monotonic()
    owed = 0.0
    key = 0
    checksum = 0
    full_at = None
    for _ in paced(DURATION, TICK):
        owed += new_per_tick
        while owed >= 1:
            checksum += len(render_tile(key))
            key += 1
            owed -= 1
        for back in (1, 7, 50):        # popular recent keys: hits
            if key > back:
                checksum += len(render_tile(key - back))
        if full_at is None and render_tile.cache_info().currsize >= MAXSIZE:
            full_at = time.monotonic() - t0
    elapsed = time.monotonic() - t0
    info = render_tile.cache_info()
    print("summary " + json.dumps({
        "program": "p03_lru_plateau", "hits": info.hits, "misses": info.misses, "currsize": info.currsize,
        "full_at_s": full_at and round(full_at, 3), "elapsed_s": round(elapsed, 3),
        "plateau_bytes": info.currsize * sys.getsizeof(render_tile(key - 1)), "leak_bytes_per_s": 0}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
