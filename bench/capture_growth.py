#!/usr/bin/env python3
"""leakscope capture growth: how big does a capture get when an allocation-heavy program runs
for a long time?

    python3 bench/capture_growth.py [--minutes 10] [--quick]

Runs bench/workloads/alloc_heavy_for.py (alloc_heavy.py's loop, continuously, flat out) for
--minutes under `leakscope run` at its defaults, then again with --sample-rate 524288. While each
runs, the capture file's size is read every --every seconds; the growth rate is the
least-squares slope of size over time after the first 10% of the run (at least 10 s), and is
extrapolated to one hour and one week.  See bench/README.md.  Standard library only.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

# bench/ is this script's directory
from run import CACHE_DIR, DEFAULT_LEAKSCOPE, DEFAULT_PYTHON, REPO, SAMPLE_RATE, WORKLOAD_DIR, fmt_size, git_rev

WORKLOAD = os.path.join(WORKLOAD_DIR, "alloc_heavy_for.py")

NOTE = """\
NOTE: leakscope's default capture is 'aggregate': the agent keeps the live table in-process and
writes only the sites that changed (at most about once a second), so the file grows with stacks
and time, not with allocations. `--mode events` writes one record for every allocation and free
(zstd-compressed chunks): it grows with the allocation rate. With --sample-rate 524288 only about
one allocation per 512 KiB allocated is recorded."""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)




def slope(points: list[tuple[float, int]]) -> float | None:
    """least-squares bytes per second"""
    if len(points) < 2:
        return None
    n = len(points)
    mt = sum(t for t, _ in points) / n
    ms = sum(s for _, s in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    if var == 0:
        return None
    return sum((t - mt) * (s - ms) for t, s in points) / var


def run_mode(a, name: str, extra: list[str], work: str) -> dict:
    cap = os.path.join(work, f"{name}.lsc")
    stats = os.path.join(work, f"{name}-stats.json")
    seconds = a.minutes * 60
    argv = [a.leakscope, "run", "-q", *extra, "-o", cap, "--",
            a.python, WORKLOAD, f"{seconds:g}", "--stats", stats]
    res = {"mode": name, "argv": argv[:argv.index("--")], "samples": [], "stopped_early": None}
    limit = a.max_gb * 2**30
    err = tempfile.TemporaryFile()
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=err)
    next_sample = a.every
    next_log = 30.0
    try:
        while True:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            el = time.perf_counter() - t0
            if el >= next_sample:
                size = os.path.getsize(cap) if os.path.exists(cap) else 0
                res["samples"].append((el, size))
                next_sample += a.every
                if el >= next_log:
                    log(f"[{name}] {el:.0f} s: capture {fmt_size(size)}")
                    next_log += 30.0
                if size > limit and res["stopped_early"] is None:
                    res["stopped_early"] = el
                    log(f"[{name}] capture passed --max-gb {a.max_gb:g}: stopping the run")
                    os.kill(proc.pid, signal.SIGTERM)  # leakscope run forwards it
            time.sleep(0.1)
    finally:
        if proc.poll() is None and not res.get("wall"):
            try:
                os.kill(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    res["wall"] = time.perf_counter() - t0
    res["code"] = os.waitstatus_to_exitcode(status)
    res["cpu"] = ru.ru_utime + ru.ru_stime
    if res["code"] != 0 and res["stopped_early"] is None:
        err.seek(0)
        res["error"] = err.read()[-400:].decode("utf-8", "replace").strip()
    res["final_bytes"] = os.path.getsize(cap) if os.path.exists(cap) else 0
    try:
        with open(stats) as f:
            res["iterations"] = json.load(f)["iterations"]
    except (OSError, ValueError, KeyError):
        res["iterations"] = None
    skip = max(10.0, 0.1 * res["wall"])
    steady = [(t, s) for t, s in res["samples"] if t >= skip]
    bps = slope(steady)
    res["steady_bytes_per_min"] = None if bps is None else bps * 60
    res["avg_bytes_per_min"] = res["final_bytes"] / res["wall"] * 60
    res["events"] = None
    res["snapshots"] = res["thinned"] = None
    if not extra or name.startswith("thinned"):  # aggregate captures report in well under a second
        p = subprocess.run([a.leakscope, "report", cap, "--format", "json"], capture_output=True,
                           timeout=a.report_timeout)
        if p.returncode == 0:
            c = json.loads(p.stdout)["capture"]
            res["snapshots"], res["thinned"] = c.get("snapshots"), c.get("thinned")
    if name == "sampled" or a.events:
        log(f"[{name}] leakscope report --format json for the event count")
        t1 = time.perf_counter()
        try:
            p = subprocess.run([a.leakscope, "report", cap, "--format", "json"],
                               capture_output=True, timeout=a.report_timeout)
            if p.returncode == 0:
                res["events"] = json.loads(p.stdout)["capture"]["events"]
                res["report_s"] = time.perf_counter() - t1
        except (subprocess.TimeoutExpired, ValueError, KeyError):
            pass
    os.remove(cap) if os.path.exists(cap) else None
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=None,
                    help="minutes per run (default 10; --quick 0.5)")
    ap.add_argument("--quick", action="store_true", help="smoke test: 30 s per run")
    ap.add_argument("--every", type=float, default=5.0, help="seconds between size readings (5)")
    ap.add_argument("--max-gb", type=float, default=None,
                    help="stop a run whose capture passes this many GiB (default: a third of "
                         "the free disk space)")
    ap.add_argument("--events", action="store_true",
                    help="also report the default-mode capture for its event count (slow: "
                         "billions of events)")
    ap.add_argument("--report-timeout", type=float, default=900.0,
                    help="seconds allowed for that report (900)")
    ap.add_argument("--skip-sampled", action="store_true", help="only the default-mode run")
    ap.add_argument("--python", default=DEFAULT_PYTHON, help=f"interpreter ({DEFAULT_PYTHON})")
    ap.add_argument("--leakscope", default=DEFAULT_LEAKSCOPE, help="leakscope binary")
    a = ap.parse_args()
    a.minutes = a.minutes if a.minutes is not None else (0.5 if a.quick else 10.0)
    for path, what in ((a.leakscope, "leakscope (build it: cmake --build build -j2)"),
                       (a.python, "python (--python)")):
        if not os.access(path, os.X_OK):
            ap.error(f"{what} not executable: {path}")
    a.leakscope = os.path.abspath(a.leakscope)
    os.makedirs(CACHE_DIR, exist_ok=True)
    if a.max_gb is None:
        st = os.statvfs(CACHE_DIR)
        a.max_gb = st.f_bavail * st.f_frsize / 3 / 2**30

    rev = git_rev()
    load0 = os.getloadavg()
    started = time.time()
    work = tempfile.mkdtemp(prefix="capture-growth-", dir=CACHE_DIR)
    # The thinning rule depends on run length / --full-resolution only (capture/thin.h): a run of
    # T with --full-resolution T/168 thins exactly as a week does with the default hour.
    accel = f"{a.minutes * 60 / 168:.3f}"
    modes = [("defaults (aggregate)", []),
             ("thinned (week-scaled)", ["--full-resolution", accel, "--thin-at", "16384"]),
             ("--mode events", ["--mode", "events"])]
    if not a.skip_sampled:
        modes.append(("sampled", ["--sample-rate", str(SAMPLE_RATE)]))
    results = []
    try:
        for name, extra in modes:
            log(f"[{name}] {a.minutes:g} min of alloc_heavy under leakscope run "
                f"{' '.join(extra) or '(defaults)'}")
            results.append(run_mode(a, name, extra, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"leakscope capture growth  rev {rev}  {time.strftime('%Y-%m-%d %H:%M:%S')}  "
          f"({os.cpu_count()} cpus, load {load0[0]:.2f} -> {os.getloadavg()[0]:.2f}; "
          f"took {time.time() - started:.0f} s)")
    print(f"workload: {os.path.relpath(WORKLOAD, REPO)} (alloc_heavy.py's loop, ~18 events per "
          f"iteration, flat out) for {a.minutes:g} min per mode")
    print(NOTE)
    print()
    hdr = (f"{'mode':<36} {'run s':>6} {'iter/s':>10} {'events':>14} {'capture':>10} "
           f"{'per minute':>11} {'(average)':>10} {'1 hour':>10} {'1 week':>10}")
    print(hdr)
    print("-" * len(hdr))
    for r in results:
        label = "leakscope run " + (" ".join(r["argv"][3:r["argv"].index("-o")]) or "(defaults)")
        per_min = r["steady_bytes_per_min"] or r["avg_bytes_per_min"]
        ips = r["iterations"] / r["wall"] if r["iterations"] else None
        ev = f"{r['events']:,}" if r["events"] else "-"
        print(f"{label:<36} {r['wall']:>6.0f} {'-' if ips is None else f'{ips:,.0f}':>10} "
              f"{ev:>14} {fmt_size(r['final_bytes']):>10} {fmt_size(per_min):>11} "
              f"{fmt_size(r['avg_bytes_per_min']):>10} {fmt_size(per_min * 60):>10} "
              f"{fmt_size(per_min * 60 * 24 * 7):>10}")
        if r["events"]:
            print(f"{'':<36} {r['final_bytes'] / r['events']:.3f} B/event")
        if r["snapshots"] is not None:
            print(f"{'':<36} {r['snapshots']:,} snapshots kept, {r['thinned']} rewrites")
        if r["stopped_early"] is not None:
            print(f"  !! stopped after {r['stopped_early']:.0f} s: capture passed "
                  f"--max-gb {a.max_gb:g}")
        if r.get("error"):
            print(f"  !! exit {r['code']}: {r['error']}")
    print("per minute = least-squares slope of capture size over time after the first 10% of "
          "the run; (average) = final size / run time; 1 hour and 1 week = per minute x 60 and "
          "x 10,080, assuming the program keeps allocating at the same rate")
    week_projection(results)
    return 0


def kept_snapshots(total_s: float, every_s: float, full_s: float) -> int:
    """capture/thin.h's rule, counted: snapshots every every_s for total_s, full resolution for
    full_s, then buckets of every_s * 2^k, k = 1 + floor(log2(age / full_s))."""
    kept, prev, t = 0, None, 0.0
    while t <= total_s:
        age = total_s - t
        if age < full_s:
            kept += 1
            prev = None
        else:
            k = 1
            while k < 40 and age / 2 >= full_s * 2 ** (k - 1):
                k += 1
            b = (k, int(t // (every_s * 2 ** k)))
            kept += b != prev
            prev = b
        t += every_s
    return kept


def week_projection(results: list) -> None:
    """A week at defaults = definitions + the snapshots the rule keeps x bytes per snapshot."""
    d = next((r for r in results if r["mode"] == "defaults (aggregate)"), None)
    if not d or not d["snapshots"] or not d["steady_bytes_per_min"]:
        return
    per_snap = d["steady_bytes_per_min"] / 60  # one snapshot per second at the default interval
    defs = max(0.0, d["final_bytes"] - per_snap * d["snapshots"])
    kept = kept_snapshots(7 * 86400, 1.0, 3600)
    print(f"a week at defaults with thinning: {kept:,} snapshots kept (of 604,800) x "
          f"{fmt_size(per_snap)} each + {fmt_size(defs)} of definitions = "
          f"{fmt_size(defs + kept * per_snap)} (without thinning: "
          f"{fmt_size(d['steady_bytes_per_min'] * 60 * 24 * 7)})")


if __name__ == "__main__":
    sys.exit(main())
