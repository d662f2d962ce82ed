"""Thread churn: short-lived worker threads, each with a big threading.local scratch buffer.

Models: a thread-per-job server (or a pool that recycles threads) where every thread caches
a 256 KiB scratch buffer in a threading.local. Threads start and stop all the time; when a
thread ends, its thread-local values are released. Live memory is bounded by the number of
threads alive at once (4), with no trend.
Expected verdict: no-leak.

Usage: p07_thread_local_churn.py [--duration SECONDS]   (env DURATION too)
"""
import json
import os
import sys
import threading
import time

from workload import arg, paced

SCRATCH = 256 * 1024
THREADS_PER_TICK = 4
TICK = 0.02


DURATION = float(arg("--duration", os.environ.get("DURATION", "8")))

LOCAL = threading.local()
RESULTS = []
LOCK = threading.Lock()


def scratch():
    buf = getattr(LOCAL, "scratch", None)
    if buf is None:
        buf = LOCAL.scratch = bytearray(SCRATCH)  # THREAD-LOCAL-SITE
    return buf


def job(n):
    buf = scratch()
    for k in range(0, SCRATCH, 4096):
        buf[k] = (n + k) & 0xFF
    time.sleep(0.002)
    total = sum(buf[::4096])
    with LOCK:
        RESULTS.append(total)
        del RESULTS[:-64]


def main():
    t0 = time.monotonic()
    started = 0
    for _ in paced(DURATION, TICK):
        threads = [threading.Thread(target=job, args=(started + k,), name=f"job-{started + k}")
                   for k in range(THREADS_PER_TICK)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        started += len(threads)
    elapsed = time.monotonic() - t0
    print("summary " + json.dumps({
        "program": "p07_thread_local_churn", "threads": started, "alive": threading.active_count(),
        "elapsed_s": round(elapsed, 3), "leak_bytes_per_s": 0}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
