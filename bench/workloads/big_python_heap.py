"""big_python_heap: build about SIZE_MIB MiB of live Python objects, say "ready", and wait
until a file named "stop" appears in the working directory (used by bench/findleaks.py).

Usage: python big_python_heap.py [SIZE_MIB]   (default 1024)

The heap is a realistic mix, all of it kept reachable from the global list KEPT (pure
Python cannot lose an object): per record a dict {"id", "name", "pair", "tags", "score"}
holding a non-small int, a short str, a tuple of (int, str), a small list of small ints and
a float; every 16th record also keeps a bytes of 200-700 bytes.
The size counted is sys.getsizeof of every object created (pymalloc's 16-byte rounding
included), plus KEPT's pointer array. The "ready" line reports it:
    ready pid=PID objects=N bytes=B records=R
"""
import os
import sys
import time

KEPT = []


def rounded(n):
    return (n + 15) & ~15


def record(i):
    big = 1_000_000_007 + i                       # a non-small int: a real object
    name = "req-%08x" % i                         # a short str
    pair = (big, name)                            # a tuple of (int, str)
    tags = [i & 7, (i >> 3) & 7, (i >> 6) & 7]    # a small list of small ints
    score = i * 0.5                               # a float
    d = {"id": big, "name": name, "pair": pair, "tags": tags, "score": score}
    if i % 16 == 0:
        d["blob"] = bytes(200 + (i * 37) % 500)
    return d


def record_bytes(d):
    """getsizeof of the objects record() created for d, rounded as pymalloc rounds."""
    objs = [d, d["id"], d["name"], d["pair"], d["tags"], d["score"]]
    if "blob" in d:
        objs.append(d["blob"])
    return sum(rounded(sys.getsizeof(o)) for o in objs)


def main(size_mib):
    target = size_mib << 20
    total = 0
    objects = 0
    i = 0
    batch = 4096
    while total + rounded(sys.getsizeof(KEPT)) < target:
        # every record of a batch has the same shape but the blob's; measured on 16 of them
        sample = 0
        for j in range(batch):
            d = record(i + j)
            KEPT.append(d)
            if j < 16:
                sample += record_bytes(d)
        total += sample * batch // 16
        objects += batch * 6 + batch // 16
        i += batch
    total += rounded(sys.getsizeof(KEPT))
    print(f"ready pid={os.getpid()} objects={objects + 1} bytes={total} records={len(KEPT)}", flush=True)
    while not os.path.exists("stop"):
        time.sleep(0.05)
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1024))
