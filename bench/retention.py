#!/usr/bin/env python3
"""leakscope retention benchmark: how long does the object-graph walk at the end of a Python
run pause the program's exit, and what does it cost in memory?

    python3 bench/retention.py [--objects 1000000,5000000,10000000] [--repeat 3] [--quick]

For each interpreter (Debian's /usr/bin/python3 and the pyenv one, bench/run.py's
DEFAULT_PYTHON) and each size, bench/workloads/many_objects.py builds about N live objects
and exits. Side by side, in one invocation, `repeat` times each: the plain program,
`leakscope run` (retention on, the default) and `leakscope run --no-retention`. Printed per
case (medians): the pause the report records (`retention.pause_s`), objects walked, the pause
per million objects, the extra wall time of the exit, and the extra peak RSS of the run
(ru_maxrss of the process tree, retention on minus off).
Target (issue 10): at most 1 s per million live objects; at most 3 s at 5 million.
Standard library only.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from run import DEFAULT_LEAKSCOPE, DEFAULT_PYTHON, WORKLOAD_DIR, fmt, fmt_size, git_rev, log, med

DEBIAN_PYTHON = "/usr/bin/python3"
WORKLOAD = os.path.join(WORKLOAD_DIR, "many_objects.py")
TARGET_S_PER_MILLION = 1.0
TARGET_AT_5M_S = 3.0


def run_once(argv: list[str], cwd: str) -> tuple[float, int, int]:
    """Wall seconds, peak RSS (bytes, the biggest process of the tree) and exit status."""
    t0 = time.monotonic()
    p = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    err = p.stderr.read().decode(errors="replace")
    p.stderr.close()
    rc = os.waitstatus_to_exitcode(status)
    if rc != 0:
        raise SystemExit(f"{argv} exited {rc}: {err[-2000:]}")
    return wall, ru.ru_maxrss * 1024, rc


def report(leakscope: str, capture: str) -> dict:
    out = subprocess.run([leakscope, "report", capture, "--format", "json"], capture_output=True, check=True)
    return json.loads(out.stdout)


def bench_case(python: str, n: int, repeat: int, leakscope: str) -> dict:
    res = {"plain_s": [], "on_s": [], "off_s": [], "on_rss": [], "off_rss": [], "pause_s": [], "objects": []}
    with tempfile.TemporaryDirectory(prefix="ls-retention-") as d:
        for i in range(repeat):
            w, _, _ = run_once([python, WORKLOAD, str(n)], d)
            res["plain_s"].append(w)
            cap = os.path.join(d, f"on{i}.lsc")
            w, rss, _ = run_once([leakscope, "run", "-q", "-o", cap, "--", python, WORKLOAD, str(n)], d)
            res["on_s"].append(w)
            res["on_rss"].append(rss)
            r = report(leakscope, cap)["retention"]
            if r is None:
                raise SystemExit("the capture has no retention record")
            res["pause_s"].append(r["pause_s"])
            res["objects"].append(r["objects"])
            os.unlink(cap)
            cap = os.path.join(d, f"off{i}.lsc")
            w, rss, _ = run_once([leakscope, "run", "-q", "--no-retention", "-o", cap, "--", python, WORKLOAD, str(n)], d)
            res["off_s"].append(w)
            res["off_rss"].append(rss)
            os.unlink(cap)
            log(f"  {os.path.basename(python)} {n:,}: pause {res['pause_s'][-1]:.2f} s, "
                f"{res['objects'][-1]:,} objects")
    m = {k: med(v) for k, v in res.items()}
    m["per_million_s"] = m["pause_s"] / (m["objects"] / 1e6)
    m["exit_delay_s"] = m["on_s"] - m["off_s"]
    m["extra_rss"] = m["on_rss"] - m["off_rss"]
    m["raw"] = res
    return m


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objects", default="1000000,5000000,10000000")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="200,000 objects, 1 repeat")
    ap.add_argument("--leakscope", default=DEFAULT_LEAKSCOPE)
    ap.add_argument("--json", help="also write the raw measurements here")
    a = ap.parse_args()
    sizes = [200000] if a.quick else [int(x) for x in a.objects.split(",")]
    repeat = 1 if a.quick else a.repeat
    pythons = [p for p in (DEBIAN_PYTHON, DEFAULT_PYTHON) if os.access(p, os.X_OK)]
    results = {}
    print(f"leakscope retention benchmark (rev {git_rev()}, {repeat} runs each, medians)")
    print(f"{'interpreter':<34} {'objects':>11} {'pause':>8} {'s/M obj':>8} {'exit +':>8} {'RSS +':>10}"
          f" {'plain':>7} {'run':>7}  target")
    for py in pythons:
        for n in sizes:
            m = bench_case(py, n, repeat, a.leakscope)
            results[f"{py}:{n}"] = m
            # the 5 M target, scaled to the objects actually walked
            at_5m = m["pause_s"] * 5e6 / m["objects"] if n == 5000000 else None
            ok = m["per_million_s"] <= TARGET_S_PER_MILLION and (at_5m is None or at_5m <= TARGET_AT_5M_S)
            print(f"{py:<34} {int(m['objects']):>11,} {fmt(m['pause_s'], '.2f', ' s'):>8} "
                  f"{fmt(m['per_million_s'], '.2f'):>8} {fmt(m['exit_delay_s'], '.2f', ' s'):>8} "
                  f"{fmt_size(m['extra_rss']):>10} {fmt(m['plain_s'], '.1f', ' s'):>7} {fmt(m['on_s'], '.1f', ' s'):>7}"
                  f"  {'met' if ok else 'MISSED'} (<= {TARGET_S_PER_MILLION:g} s/M"
                  f"{', <= 3 s at 5M' if n == 5000000 else ''})", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
