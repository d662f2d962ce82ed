"""leak_steady: a service-like loop that churns short-lived objects and buffers (150 MB/s of
buffers by default) while leaking 5 MiB per minute, steadily and in small pieces, at ONE line
(the one with the LEAK-MARK comment).  Used by bench/leak_detection.py.

Usage: python leak_steady.py SECONDS [--churn-mb-s 150] [--leak-mib-min 5] [--piece 1024]
                                     [--stats FILE]

Both rates are paced by the wall clock in 10 ms ticks, so a plain run and a run under a tool do
the same work per second (if a tool makes the loop too slow to keep up, the achieved rates in the
stats file show it).  Leaked bytes are counted as a profiler sees them at the marked line: the
bytes objects (sys.getsizeof, 1057 B for a 1024-byte piece) plus the list's pointer array
(sys.getsizeof(LEAKED) - sys.getsizeof([])); pacing keeps that sum at rate * elapsed.
Transient bytes are counted exactly for the buffers (bytearray sizes); the small objects
(dicts, lists, strs) built around them come on top and are not counted.
"""
import json
import os
import resource
import sys
import time

LEAKED = []
# transient buffer sizes, cycled (mean 24.5 KiB)
BUF_SIZES = (2048, 8192, 16384, 32768, 65536, 4096, 24576, 49152)


def handle(i, size):
    """One 'request': a dict with headers, a list of strs joined into a body, a buffer."""
    req = {"id": i, "path": "/api/items/%d" % i,
           "headers": {"host": "example", "accept": "*/*", "x-req": str(i)}}
    parts = [str(i + k) for k in range(8 + (i & 15))]
    body = ",".join(parts).encode()
    buf = bytearray(size)
    buf[:len(body)] = body
    return len(buf) + len(req["headers"])


def leak_piece(piece):
    LEAKED.append(bytes(piece))  # LEAK-MARK: the only line whose memory is kept


def main():
    args = sys.argv[1:]
    if not args:
        raise SystemExit(__doc__)
    seconds = float(args[0])
    opts = {"--churn-mb-s": "150", "--leak-mib-min": "5", "--piece": "1024", "--stats": ""}
    it = iter(args[1:])
    for a in it:
        if a not in opts:
            raise SystemExit(f"unknown option {a}")
        opts[a] = next(it)
    churn_rate = float(opts["--churn-mb-s"]) * 1e6           # buffer bytes per second
    leak_rate = float(opts["--leak-mib-min"]) * 2**20 / 60.0  # bytes per second
    piece = int(opts["--piece"])
    stats_path = opts["--stats"]
    piece_obj = sys.getsizeof(bytes(piece))
    empty_list = sys.getsizeof([])

    tick = 0.010
    t0 = time.monotonic()
    end = t0 + seconds
    churn_bytes = 0
    requests = 0
    pieces = 0
    next_stats = t0 + 10.0
    nbuf = len(BUF_SIZES)

    def leaked_bytes():
        return pieces * piece_obj + sys.getsizeof(LEAKED) - empty_list

    def write_stats(now):
        if not stats_path:
            return
        ru = resource.getrusage(resource.RUSAGE_SELF)
        doc = {"elapsed_s": now - t0, "churn_buffer_bytes": churn_bytes, "requests": requests,
               "leaked_bytes": leaked_bytes(), "pieces": pieces, "piece_object_bytes": piece_obj,
               "cpu_s": ru.ru_utime + ru.ru_stime,
               "churn_target_mb_s": churn_rate / 1e6,
               "leak_target_mib_min": leak_rate * 60 / 2**20}
        tmp = stats_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(doc, f)
        os.replace(tmp, stats_path)

    now = t0
    while now < end:
        deadline = now + tick
        target = churn_rate * (now - t0 + tick)
        # churn up to this tick's target; check the clock every 16 requests
        while churn_bytes < target:
            for _ in range(16):
                size = BUF_SIZES[requests % nbuf]
                handle(requests, size)
                churn_bytes += size
                requests += 1
            if time.monotonic() > deadline:
                break
        now = time.monotonic()
        # the leak: catch up to leak_rate * elapsed, one small piece at a time
        want = leak_rate * (now - t0)
        while leaked_bytes() < want:
            leak_piece(piece)
            pieces += 1
        if now >= next_stats:
            write_stats(now)
            next_stats += 10.0
        now = time.monotonic()
        if now < deadline:
            time.sleep(deadline - now)
            now = time.monotonic()
    write_stats(time.monotonic())


if __name__ == "__main__":
    main()
