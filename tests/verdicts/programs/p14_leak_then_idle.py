"""A worker that leaks while it handles jobs, then idles until it exits.

Models: a queue worker (or a service at night) that keeps a record of every job it handled in a
global list, works for the first 70% of its run and then only waits for jobs that never come
(a `queue.get` with a timeout). The kept records stay reachable to the end: the growth stops
because the work stopped, not because a cache filled.
Expected verdict: leak; site = the line that builds the kept record (LEAK-SITE); the rate is
the rate while working.

Usage: p14_leak_then_idle.py [--duration SECONDS] [--work-fraction F]   (env DURATION too)
Prints one `summary {json}` line at the end.
"""
import json
import os
import queue
import sys
import time

from workload import arg, paced

RECORD_SIZE = 2048      # bytes kept per job
JOBS_PER_TICK = 2
TICK = 0.01             # seconds

DURATION = float(arg("--duration", os.environ.get("DURATION", "10")))
WORK_FRACTION = float(arg("--work-fraction", "0.7"))

HANDLED = []  # every job record ever handled ("for the report at shutdown")


def handle(job_id, payload):
    record = (job_id, bytearray(RECORD_SIZE))  # LEAK-SITE
    record[1][:8] = job_id.to_bytes(8, "little")
    HANDLED.append(record)
    # transient work: a result built and thrown away
    result = [payload[i:i + 64] for i in range(0, len(payload), 64)]
    return len(result)


def main():
    jobs = queue.Queue()
    t0 = time.monotonic()
    work_s = DURATION * WORK_FRACTION
    job_id = 0
    for _ in paced(work_s, TICK):
        for _ in range(JOBS_PER_TICK):
            handle(job_id, os.urandom(1024))
            job_id += 1
    worked = time.monotonic() - t0
    # idle: wait for jobs that never come
    while time.monotonic() - t0 < DURATION:
        try:
            jobs.get(timeout=0.05)
        except queue.Empty:
            pass
    elapsed = time.monotonic() - t0
    r = HANDLED[-1]
    per_job = sys.getsizeof(r) + sys.getsizeof(r[1])
    print("summary " + json.dumps({
        "program": "p14_leak_then_idle", "jobs": job_id, "worked_s": round(worked, 3), "elapsed_s": round(elapsed, 3),
        "leak_bytes_per_s": len(HANDLED) * per_job / worked}))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
