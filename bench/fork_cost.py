#!/usr/bin/env python3
"""What `run --follow-fork` costs a fork-heavy program (docs/process-trees.md, "Cost").

    python3 bench/fork_cost.py [--children 1000] [--repeat 3] [--python /usr/bin/python3]

bench/workloads/fork_burst.py forks N short children one after another (each builds a few
hundred small objects and leaves with os._exit). Interleaved rounds: the plain program,
`leakscope run` (children untracked) and `leakscope run --follow-fork`. Prints the median CPU
seconds of the whole process tree (wait4 of leakscope or the program: children included) and
the ratio to plain, the captures written and the disk they take. Standard library only.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

from run import DEFAULT_LEAKSCOPE, WORKLOAD_DIR  # bench/ is this script's directory


def one(cmd: list[str], d: str) -> float:
    p = subprocess.Popen(cmd, cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    if status != 0:
        sys.exit(f"{cmd} failed ({status}): {err.decode(errors='replace')[-2000:]}")
    return ru.ru_utime + ru.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--children", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--python", default="/usr/bin/python3")
    ap.add_argument("--leakscope", default=DEFAULT_LEAKSCOPE)
    a = ap.parse_args()
    prog = [a.python, os.path.join(WORKLOAD_DIR, "fork_burst.py"), str(a.children)]
    rows: dict[str, list[float]] = {"plain": [], "run": [], "run --follow-fork": []}
    files = disk = 0
    for r in range(a.repeat):
        with tempfile.TemporaryDirectory(prefix="ls-fork-bench-") as d:
            rows["plain"].append(one(prog, d))
            rows["run"].append(one([a.leakscope, "run", "-q", "-o", "u.lsc", "--", *prog], d))
            rows["run --follow-fork"].append(one([a.leakscope, "run", "-q", "--follow-fork", "-o", "t.lsc", "--", *prog], d))
            caps = [os.path.join(d, n) for n in os.listdir(d) if n.startswith("t.") and n.endswith(".lsc")]
            files, disk = len(caps), sum(os.path.getsize(c) for c in caps)
        print(f"round {r + 1}/{a.repeat}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in rows.items()), file=sys.stderr)
    base = statistics.median(rows["plain"])
    print(f"{a.children} short children, {a.python}, medians of {a.repeat} rounds (CPU of the whole tree)")
    print("| | CPU s | vs plain |\n|---|---|---|")
    for k, v in rows.items():
        m = statistics.median(v)
        print(f"| {k} | {m:.2f} | {m / base:.2f}x |")
    print(f"--follow-fork wrote {files} captures (the root and {files - 1} children), {disk / 1e6:.1f} MB in all, "
          f"{disk / max(files, 1) / 1e3:.1f} KB each on average")


if __name__ == "__main__":
    main()
