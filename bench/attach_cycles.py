#!/usr/bin/env python3
"""leakscope attach/detach cycles on a busy multithreaded Python service.

    python3 bench/attach_cycles.py [--cycles 50] [--hold 0.5] [--python PATH]

Starts two identical copies of bench/workloads/service.py side by side: A is attached and
detached --cycles times (each attach held --hold seconds), B is never touched (the control).
Prints: attach times (min/median/max, as `leakscope attach` reports them), failures, A's
throughput before the first attach, while attached, and after the last detach (each as a
ratio to B's over the same wall-clock window, so machine noise cancels), RSS of A minus RSS
of B before and after, and whether both printed the same.  Standard library only.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from run import DEFAULT_LEAKSCOPE, DEFAULT_PYTHON, REPO, WORKLOAD_DIR, git_rev  # bench/ is this script's directory

SERVICE = os.path.join(WORKLOAD_DIR, "service.py")


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def rate_between(d: str, t0: float, t1: float) -> float | None:
    """iterations per second in [t0, t1] from DIR/rate"""
    pts = []
    with open(os.path.join(d, "rate")) as f:
        for line in f:
            try:
                t, n = line.split()
                pts.append((float(t), int(n)))
            except ValueError:
                pass
    inside = [(t, n) for t, n in pts if t0 <= t <= t1]
    if len(inside) < 2:
        return None
    (ta, na), (tb, nb) = inside[0], inside[-1]
    return (nb - na) / (tb - ta) if tb > ta else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cycles", type=int, default=50)
    ap.add_argument("--hold", type=float, default=0.5, help="seconds attached per cycle (0.5)")
    ap.add_argument("--window", type=float, default=4.0, help="seconds per throughput window (4)")
    ap.add_argument("--python", default=DEFAULT_PYTHON)
    ap.add_argument("--leakscope", default=DEFAULT_LEAKSCOPE)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="attach-cycles-")
    dirs = {k: os.path.join(work, k) for k in "AB"}
    procs = {}
    try:
        for k, d in dirs.items():
            os.makedirs(d)
            procs[k] = subprocess.Popen([a.python, SERVICE, d], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        stdin=subprocess.DEVNULL)
        time.sleep(2.0)  # warm-up
        rss0 = rss_kib(procs["A"].pid) - rss_kib(procs["B"].pid)
        t = time.monotonic()
        time.sleep(a.window)
        before = (t, time.monotonic())
        times, failures = [], []
        attached_windows = []
        for i in range(a.cycles):
            cap = os.path.join(dirs["A"], f"c{i}.lsc")
            r = subprocess.run([a.leakscope, "attach", str(procs["A"].pid), "-o", cap], capture_output=True, text=True)
            m = re.search(r"in ([0-9.]+) s", r.stdout)
            if r.returncode != 0 or not m:
                failures.append(f"attach {i}: {r.stderr.strip()}")
                continue
            times.append(float(m.group(1)))
            t = time.monotonic()
            time.sleep(a.hold)
            attached_windows.append((t, time.monotonic()))
            d = subprocess.run([a.leakscope, "detach", str(procs["A"].pid), "-q"], capture_output=True, text=True)
            if d.returncode != 0:
                failures.append(f"detach {i}: {d.stderr.strip()}")
            os.remove(cap)
            if procs["A"].poll() is not None:
                failures.append(f"the service died in cycle {i}")
                break
        time.sleep(1.0)
        t = time.monotonic()
        time.sleep(a.window)
        after = (t, time.monotonic())
        rss1 = rss_kib(procs["A"].pid) - rss_kib(procs["B"].pid)
        outs = {}
        for k, d in dirs.items():
            open(os.path.join(d, "stop"), "w").close()
        for k, p in procs.items():
            try:
                out, err = p.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                out, err = p.communicate()
                failures.append(f"service {k} did not stop (deadlock?)")
            outs[k] = (p.returncode, out)

        def ratio(win):
            ra, rb = rate_between(dirs["A"], *win), rate_between(dirs["B"], *win)
            return ra / rb if ra and rb else None

        during = [x for x in (ratio(w) for w in attached_windows) if x]
        print(f"leakscope attach/detach cycles  rev {git_rev()}  {time.strftime('%Y-%m-%d %H:%M:%S')}  "
              f"({os.cpu_count()} cpus, load {os.getloadavg()[0]:.2f})")
        print(f"service: {os.path.relpath(SERVICE, REPO)} (4 threads of dict/list churn), {a.python}")
        print(f"cycles: {a.cycles} (held {a.hold:g} s each); failures: {len(failures)}")
        for f in failures[:10]:
            print(f"  !! {f}")
        if times:
            print(f"attach time: min {min(times):.3f} s, median {statistics.median(times):.3f} s, max {max(times):.3f} s")
        fmt = lambda x: "-" if x is None else f"{x:.3f}"
        print(f"throughput of A / B (same wall-clock window): before the first attach {fmt(ratio(before))}, "
              f"while attached (median of cycles) {fmt(statistics.median(during) if during else None)}, "
              f"after the last detach {fmt(ratio(after))}")
        print(f"RSS of A minus RSS of B: {rss0 / 1024:+.2f} MiB before, {rss1 / 1024:+.2f} MiB after the last detach "
              f"(change {(rss1 - rss0) / 1024:+.2f} MiB)")
        same = outs["A"] == outs["B"]
        print(f"exit status and output: A {outs['A'][0]} {outs['A'][1]!r}, B {outs['B'][0]} {outs['B'][1]!r} -> "
              f"{'same' if same else 'DIFFERENT'}")
        return 0 if not failures and same else 1
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
