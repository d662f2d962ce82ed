"""keep_tuples: keep (i, "req-%d" % i) in a global list while building a transient
str(payload) each iteration. The tuple line is marked for the attribution check.

Usage: python keep_tuples.py [ITERATIONS]   (default 200,000)
"""
import sys

KEPT = []


def handle(i):
    payload = {"id": i, "tags": ["a", "b"]}
    text = str(payload)  # transient, freed at return
    KEPT.append((i, "req-%d" % i))  # BENCH-ATTRIBUTION-MARK: the kept tuple is built here
    return len(text)


def main(n):
    total = 0
    for i in range(n):
        total += handle(i)
    return total


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    main(n)
