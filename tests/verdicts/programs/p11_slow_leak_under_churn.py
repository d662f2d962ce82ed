"""A slow leak hidden under heavy churn: 250 MB/s of transient buffers, ~80 KB/s kept.

Models: a data pipeline decoding batches of 4-128 KiB frames (all freed after each batch;
batch sizes vary, so the transient live memory jumps around by megabytes) while an audit
log quietly keeps one 800-byte record per batch forever.
Expected verdict: leak; site = the audit record line (LEAK-SITE), NOT the churn line
(CHURN-SITE), which allocates ~3000 times faster but keeps nothing.

Usage: p11_slow_leak_under_churn.py [--duration SECONDS]   (env DURATION too)
"""
import json
import os
import random
import sys
import time

from workload import arg, paced

CHURN_BYTES_PER_S = 250 * 1000 * 1000
RECORD = 800
TICK = 0.01           # one batch and one audit record per tick


DURATION = float(arg("--duration", os.environ.get("DURATION", "8")))

AUDIT_LOG = []


def decode_batch(rng, target_bytes):
    frames = []
    got = 0
    while got < target_bytes:
        size = rng.randrange(4096, 131072)
        frame = bytearray(size)  # CHURN-SITE
        frame[0] = frame[-1] = size & 0xFF
        frames.append(frame)
        got += size
    return got, sum(f[0] for f in frames)


def audit(batch_no, nbytes):
    AUDIT_LOG.append(("batch=%d bytes=%d;" % (batch_no, nbytes)).encode().ljust(RECORD, b" "))  # LEAK-SITE


def main():
    rng = random.Random(20240611)
    per_tick = CHURN_BYTES_PER_S * TICK
    t0 = time.monotonic()
    churned = 0
    for tick in paced(DURATION, TICK):
        # batches of 0.2x .. 1.8x the mean size: the transient peak varies
        got, _ = decode_batch(rng, per_tick * rng.uniform(0.2, 1.8))
        churned += got
        audit(tick, got)
    elapsed = time.monotonic() - t0
    print("summary " + json.dumps({
        "program": "p11_slow_leak_under_churn", "batches": len(AUDIT_LOG), "elapsed_s": round(elapsed, 3),
        "churn_bytes_per_s": churned / elapsed,
        "leak_bytes_per_s": len(AUDIT_LOG) * sys.getsizeof(AUDIT_LOG[-1]) / elapsed}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
