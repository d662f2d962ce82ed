#!/usr/bin/env python3
"""What `python3 -m pytest --leakscope` costs a suite of small tests (docs/python-api.md, "Overhead").

    python3 bench/pytest_cost.py [--tests 200] [--repeat 5] [--python /usr/bin/python3]

Writes a suite of N small tests (each sums a short range) into a private temp dir and runs it in
interleaved pairs: plain pytest, then pytest --leakscope, `--repeat` times. Prints the median
wall and CPU (the pytest process's own, from wait4) of each, their ratios, and the overhead per
test: (tracked - plain) / N. The interpreter needs pytest (Debian's python3-pytest); pyenv's
builds have none here, so the default is Debian's /usr/bin/python3. Standard library only.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)


def one(python: str, d: str, tracked: bool) -> tuple[float, float]:
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "pylib"), LEAKSCOPE_BUILD=os.path.join(ROOT, "build"))
    if not tracked:  # the plain run does not even see the plugin
        env.pop("PYTHONPATH")
    cmd = [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *(["--leakscope"] if tracked else []),
           "test_many.py"]
    t = time.monotonic()
    p = subprocess.Popen(cmd, cwd=d, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = p.stdout.read().decode(errors="replace")
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t
    if status != 0 or " passed" not in out:
        sys.exit(f"pytest failed ({'tracked' if tracked else 'plain'}):\n{out[-2000:]}")
    return wall, ru.ru_utime + ru.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tests", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--python", default="/usr/bin/python3")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ls-pytest-bench-") as d:
        with open(os.path.join(d, "test_many.py"), "w") as f:
            f.write("\n".join(f"def test_small_{i}():\n    assert sum(range({i} + 10)) > 0\n" for i in range(a.tests)))
        one(a.python, d, False)  # warm-up: page cache, .pyc files
        plain, tracked = [], []
        for r in range(a.repeat):
            plain.append(one(a.python, d, False))
            tracked.append(one(a.python, d, True))
            print(f"pair {r + 1}/{a.repeat}: plain {plain[-1][0]:.2f} s, --leakscope {tracked[-1][0]:.2f} s",
                  file=sys.stderr)
    pw, pc = statistics.median(w for w, _ in plain), statistics.median(c for _, c in plain)
    tw, tc = statistics.median(w for w, _ in tracked), statistics.median(c for _, c in tracked)
    wr = statistics.median(t[0] / p[0] for p, t in zip(plain, tracked))
    cr = statistics.median(t[1] / p[1] for p, t in zip(plain, tracked))
    print(f"{a.tests} small tests, {a.python}, medians of {a.repeat} interleaved pairs")
    print(f"| | wall s | CPU s |\n|---|---|---|\n| plain pytest | {pw:.2f} | {pc:.2f} |\n"
          f"| pytest --leakscope | {tw:.2f} | {tc:.2f} |\n| ratio (median of pairs) | {wr:.2f} | {cr:.2f} |")
    print(f"overhead per test: {(tw - pw) / a.tests * 1000:.2f} ms wall, {(tc - pc) / a.tests * 1000:.2f} ms CPU "
          f"(start-up and the end included); goal: ratio <= 1.5")


if __name__ == "__main__":
    main()
