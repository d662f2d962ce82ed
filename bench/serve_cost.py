#!/usr/bin/env python3
"""What `leakscope run --serve` costs while /metrics is scraped (docs/serve.md, "cost").

    python3 bench/serve_cost.py [--seconds 20] [--intervals off,15,5,1] [--churn-mb-s 20]

Runs bench/workloads/leak_steady.py (paced by the wall clock, so every run does the same work)
under `leakscope run`, once per scrape interval ("off": no --serve), scraping /metrics from this
process. Prints per interval: the program's CPU seconds (its own getrusage) and the ratio to
"off", the companion's (leakscope's) CPU seconds, what serving added in all (program and
companion, against that round's "off") as a share of one core over the run, and the scrapes'
latency. Standard library only.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

from run import DEFAULT_LEAKSCOPE, DEFAULT_PYTHON, WORKLOAD_DIR  # bench/ is this script's directory


def one_run(leakscope: str, python: str, seconds: float, interval: float | None, churn: str, d: str) -> dict:
    stats = os.path.join(d, "stats.json")
    cmd = [leakscope, "run", "-o", os.path.join(d, "c.lsc")]
    if interval is not None:
        cmd += ["--serve", "127.0.0.1:0", "--token-file", os.path.join(d, "token")]
    cmd += ["--", python, os.path.join(WORKLOAD_DIR, "leak_steady.py"), str(seconds), "--churn-mb-s", churn,
            "--stats", stats]
    p = subprocess.Popen(cmd, cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    latencies: list[float] = []
    if interval is not None:
        line = p.stderr.readline().decode()
        port = re.search(r"127\.0\.0\.1:(\d+)/", line).group(1)
        token = open(os.path.join(d, "token")).read().strip()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {token}"})

        def scrape():
            while p.poll() is None:
                t0 = time.monotonic()
                try:
                    with urllib.request.urlopen(req, timeout=30) as r:
                        r.read()
                    latencies.append(time.monotonic() - t0)
                except urllib.error.HTTPError as e:  # 503: the agent is not up yet, or the program ended
                    e.read()
                except OSError:
                    break
                time.sleep(max(0.0, interval - (time.monotonic() - t0)))

        threading.Thread(target=scrape, daemon=True).start()
    p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = status
    total = ru.ru_utime + ru.ru_stime  # leakscope and the program it waited for (RUSAGE_BOTH)
    with open(stats) as f:
        program = json.load(f)["cpu_s"]
    return {"program_cpu_s": program, "companion_cpu_s": total - program, "scrapes": len(latencies),
            "latency_median_s": statistics.median(latencies) if latencies else None,
            "latency_max_s": max(latencies) if latencies else None}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--intervals", default="off,15,5,1")
    ap.add_argument("--churn-mb-s", default="20")
    ap.add_argument("--repeat", type=int, default=1,
                    help="rounds; each runs every interval in turn, and each ratio is against that round's 'off'")
    ap.add_argument("--leakscope", default=DEFAULT_LEAKSCOPE)
    ap.add_argument("--python", default=DEFAULT_PYTHON)
    a = ap.parse_args()
    intervals = a.intervals.split(",")
    if intervals[0] != "off":
        intervals.insert(0, "off")
    rows = {iv: [] for iv in intervals}
    print(f"{'round':>5} {'scrape every':>12} {'program CPU s':>14} {'vs off':>8} {'companion CPU s':>16} "
          f"{'added, % core':>14} {'scrapes':>8} {'latency median/max s':>22}")
    for rnd in range(a.repeat):
        base = None
        for iv in intervals:
            interval = None if iv == "off" else float(iv)
            with tempfile.TemporaryDirectory(prefix="leakscope-serve-bench-") as d:
                r = one_run(a.leakscope, a.python, a.seconds, interval, a.churn_mb_s, d)
            base = base or r
            r["ratio"] = r["program_cpu_s"] / base["program_cpu_s"] - 1
            # what serving added, program and companion together, as a share of one core
            r["added_core"] = (r["program_cpu_s"] + r["companion_cpu_s"] - base["program_cpu_s"] -
                               base["companion_cpu_s"]) / a.seconds
            rows[iv].append(r)
            lat = "-" if r["latency_median_s"] is None else f"{r['latency_median_s']:.3f}/{r['latency_max_s']:.3f}"
            print(f"{rnd + 1:>5} {iv:>12} {r['program_cpu_s']:14.2f} {r['ratio']:+8.1%} "
                  f"{r['companion_cpu_s']:16.2f} {r['added_core']:+14.2%} {r['scrapes']:8d} {lat:>22}", flush=True)
    if a.repeat > 1:
        print(f"medians of {a.repeat} rounds (goal: serving and scraping every 15 s adds at most 1% CPU)")
        for iv in intervals[1:]:
            med = statistics.median(r["ratio"] for r in rows[iv])
            comp = statistics.median(r["companion_cpu_s"] for r in rows[iv])
            added = statistics.median(r["added_core"] for r in rows[iv])
            lat = statistics.median(r["latency_median_s"] for r in rows[iv] if r["latency_median_s"] is not None)
            print(f"  every {iv:>4} s: program CPU {med:+.1%}, companion {comp:.2f} s CPU per {a.seconds:.0f} s, "
                  f"added in all {added:+.2%} of a core, scrape latency {lat:.3f} s")


if __name__ == "__main__":
    sys.exit(main())
