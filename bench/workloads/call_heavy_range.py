"""call_heavy_range: the call-heavy loop driven by range(), which allocates one int object per
iteration (values above 256 are not cached): 2 calls and 1 allocation + 1 free per iteration.

Usage: python call_heavy_range.py [ITERATIONS]   (default 12,000,000)
"""
import sys

from call_heavy import step  # the same two functions; only the loop differs


def main(n):
    x = 0
    for _ in range(n):
        x = step(x)
    return x


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 12_000_000
    main(n)
