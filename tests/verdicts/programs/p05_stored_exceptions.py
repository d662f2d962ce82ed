"""Caught exceptions appended to a list: each keeps its traceback, the frames, their locals.

Models: an "errors seen so far" list for a later report. `except ... as e: errors.append(e)`
keeps e.__traceback__ -> the frame of parse_record -> its local `scratch`, a 16 KiB buffer.
One record in four is bad. Good records free their scratch buffer normally.

Which line is the leak site? The retained objects are created on three lines: the scratch
buffer (SCRATCH line, ~16 KiB each), the exception + traceback + frame object (RAISE line,
a few hundred bytes), and the caller's traceback entry. Leaks are ranked by rate, and >95%
of the retained bytes come from the SCRATCH line, so that is the top site we expect (the
line marked LEAK-SITE). The test also accepts nothing outside the lines that created retained
objects (LEAK-SITE, RAISE-SITE, CALL-SITE, APPEND-SITE) for leaks[0].

Usage: p05_stored_exceptions.py [--duration SECONDS]   (env DURATION too)
"""
import json
import os
import sys
import time

from workload import arg, paced

SCRATCH = 16384
RECORDS_PER_TICK = 8
TICK = 0.01


DURATION = float(arg("--duration", os.environ.get("DURATION", "8")))


class BadRecord(ValueError):
    pass


def parse_record(raw):
    scratch = bytearray(SCRATCH)  # LEAK-SITE
    scratch[: len(raw)] = raw
    if raw[0] % 4 == 0:
        raise BadRecord(f"bad record header {raw[:4].hex()}")  # RAISE-SITE
    return sum(scratch[:16])


ERRORS = []


def ingest(i):
    raw = i.to_bytes(8, "little") * 8
    try:
        return parse_record(raw)  # CALL-SITE
    except BadRecord as e:
        ERRORS.append(e)  # APPEND-SITE
        return -1


def main():
    t0 = time.monotonic()
    n = 0
    for _ in paced(DURATION, TICK):
        for _ in range(RECORDS_PER_TICK):
            ingest(n)
            n += 1
    elapsed = time.monotonic() - t0
    tb = ERRORS[-1].__traceback__
    while tb.tb_next is not None:
        tb = tb.tb_next
    scratch = tb.tb_frame.f_locals["scratch"]
    print("summary " + json.dumps({
        "program": "p05_stored_exceptions", "records": n, "errors": len(ERRORS), "elapsed_s": round(elapsed, 3),
        "leak_bytes_per_s": len(ERRORS) * sys.getsizeof(scratch) / elapsed}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
