"""Pieces every verdict program shares: command-line values and a paced work loop.

Imported by its siblings (a script's own directory is first on sys.path), so each program
still runs on its own: `python3 p01_request_registry.py --duration 10`.
"""
import sys
import time


def arg(name, default):
    """The value after `name` on the command line, else `default`."""
    if name in sys.argv:
        return sys.argv[sys.argv.index(name) + 1]
    return default


def paced(duration, tick):
    """Yields 0, 1, 2 ... once per `tick` seconds for `duration` seconds (a service's pace)."""
    start = time.monotonic()
    i = 0
    while i * tick < duration:
        delay = start + i * tick - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield i
        i += 1
