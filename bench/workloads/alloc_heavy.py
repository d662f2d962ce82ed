"""alloc_heavy: build and drop a small dict, list, tuple and string per iteration.

Usage: python alloc_heavy.py [ITERATIONS]   (default 1,000,000)
"""
import sys


def main(n):
    total = 0
    for i in range(n):
        d = {"i": i, "sq": i * i}
        l = [i, i + 1, i + 2]
        t = (i, d, l)
        s = "item-%d" % i
        total += len(d) + len(l) + len(t) + len(s)
    return total


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    main(n)
