"""call_heavy: pure-Python function calls that allocate (almost) nothing.

Usage: python call_heavy.py [ITERATIONS]   (default 12,000,000)
Small ints only (cached), no containers, and itertools.repeat instead of range so the loop
itself creates no int objects: this measures what a tool costs per *call*.
"""
import itertools
import sys


def add(a, b):
    return a + b


def step(x):
    return add(x, 1) & 0xFF


def main(n):
    x = 0
    for _ in itertools.repeat(None, n):
        x = step(x)
    return x


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 12_000_000
    main(n)
