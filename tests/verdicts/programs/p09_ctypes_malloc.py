"""libc malloc through ctypes, and an error path that forgets to free.

Models: Python code managing native buffers by hand (ctypes.CDLL(None).malloc/free), where
the "short message" path returns early without libc.free. One message in four leaks 8 KiB.
Expected verdict: leak at the malloc layer; site = the Python line calling libc.malloc.

Usage: p09_ctypes_malloc.py [--duration SECONDS]   (env DURATION too)
"""
import ctypes
import json
import os
import sys
import time

from workload import arg, paced

BLOCK = 8192
MESSAGES_PER_TICK = 4
TICK = 0.01


DURATION = float(arg("--duration", os.environ.get("DURATION", "8")))

libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.restype = None
libc.free.argtypes = [ctypes.c_void_p]
libc.memset.restype = ctypes.c_void_p
libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]

LEAKED = [0]


def decode(i):
    buf = libc.malloc(BLOCK)  # LEAK-SITE
    libc.memset(buf, i & 0xFF, BLOCK)
    if i % 4 == 0:  # short message: early return, buf is never freed
        LEAKED[0] += 1
        return 0
    value = ctypes.string_at(buf, 16)
    libc.free(buf)
    return len(value)


def main():
    t0 = time.monotonic()
    n = 0
    for _ in paced(DURATION, TICK):
        for _ in range(MESSAGES_PER_TICK):
            decode(n)
            n += 1
    elapsed = time.monotonic() - t0
    print("summary " + json.dumps({
        "program": "p09_ctypes_malloc", "messages": n, "leaked": LEAKED[0], "elapsed_s": round(elapsed, 3),
        "leak_bytes_per_s": LEAKED[0] * BLOCK / elapsed}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
