"""call_heavy: pure-Python function calls that allocate little.

Usage: python call_heavy.py [ITERATIONS]   (default 3,000,000)
Small ints only (cached), no containers built in the loop.
"""
import sys


def add(a, b):
    return a + b


def step(x):
    return add(x, 1) & 0xFF


def main(n):
    x = 0
    for _ in range(n):
        x = step(x)
    return x


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3_000_000
    main(n)
