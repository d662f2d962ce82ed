#!/usr/bin/env python3
"""leakscope leak-detection scenario: how soon does a sampled capture, reported WHILE the program
runs, name the right line and the right rate?

    python3 bench/leak_detection.py [--minutes 6] [--quick]

Runs bench/workloads/leak_steady.py (150 MB/s of transient buffers plus small objects, and a
steady 5 MiB/min leak at the line marked LEAK-MARK) under
    leakscope run -q --sample-rate 524288 --interval 5 -o CAPTURE -- python leak_steady.py ...
and every --poll seconds (30) runs `leakscope report CAPTURE --format json` on the live capture.
Prints one row per poll (elapsed, verdict, top leak site, its rate, error vs the true rate), the
first time the verdict is "leak" with the marked line on top and the rate within --tolerance
(25%), the capture size, the transient rate actually achieved, and the CPU cost against a plain
run of the same paced workload.  See bench/README.md.  Standard library only.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

# bench/ is this script's directory
from run import CACHE_DIR, DEFAULT_LEAKSCOPE, DEFAULT_PYTHON, REPO, WORKLOAD_DIR, fmt_size, git_rev

WORKLOAD = os.path.join(WORKLOAD_DIR, "leak_steady.py")
MARK = "LEAK-MARK"
MiB = 2**20


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def marked_line() -> int:
    with open(WORKLOAD) as f:
        for n, line in enumerate(f, 1):
            if MARK in line and "LEAKED.append" in line:
                return n
    raise SystemExit(f"{WORKLOAD}: no line with {MARK}")




def read_json(path: str):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def top_site(leak: dict):
    """(basename:line, file, line) of the innermost Python frame of a leaks[] entry."""
    for fr in leak.get("frames", []):
        if not fr.get("native") and fr.get("file"):
            return (f"{os.path.basename(str(fr['file']))}:{fr.get('line')}", fr["file"],
                    fr.get("line"))
    fr = (leak.get("frames") or [{}])[0]
    name = fr.get("function") or fr.get("address") or "?"
    return (f"[native] {name}", None, None)


def report(leakscope: str, cap: str) -> tuple[float, dict | None, str]:
    t0 = time.perf_counter()
    p = subprocess.run([leakscope, "report", cap, "--format", "json"], stdin=subprocess.DEVNULL,
                       capture_output=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        return wall, None, p.stderr.decode("utf-8", "replace").strip()[-300:]
    try:
        return wall, json.loads(p.stdout), ""
    except ValueError as e:
        return wall, None, f"unparseable JSON: {e}"


def run_plain(a, seconds: float, stats: str) -> dict:
    argv = [a.python, WORKLOAD, f"{seconds:g}", "--stats", stats, *a.workload_args]
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    return {"wall": time.perf_counter() - t0, "cpu": ru.ru_utime + ru.ru_stime,
            "code": os.waitstatus_to_exitcode(status), "stats": read_json(stats)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=None,
                    help="how long the workload runs (default 6; --quick 1)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: 1 minute, poll every 10 s, 15 s plain run")
    ap.add_argument("--poll", type=float, default=None,
                    help="seconds between live reports (default 30; --quick 10)")
    ap.add_argument("--interval", type=float, default=5.0, help="leakscope run --interval (5)")
    ap.add_argument("--sample-rate", type=int, default=524288,
                    help="leakscope run --sample-rate (524288)")
    ap.add_argument("--leak-mib-min", type=float, default=5.0, help="true leak rate (5 MiB/min)")
    ap.add_argument("--churn-mb-s", type=float, default=150.0,
                    help="transient buffer bytes per second, paced (150 MB/s)")
    ap.add_argument("--tolerance", type=float, default=0.25,
                    help="allowed relative rate error for 'detected' (0.25)")
    ap.add_argument("--target-minutes", type=float, default=5.0,
                    help="detection-time target (5 minutes)")
    ap.add_argument("--plain-seconds", type=float, default=None,
                    help="length of the plain run for the CPU comparison (default 60; --quick "
                         "15; 0 skips it)")
    ap.add_argument("--keep", action="store_true", help="keep the capture (path printed)")
    ap.add_argument("--python", default=DEFAULT_PYTHON, help=f"interpreter ({DEFAULT_PYTHON})")
    ap.add_argument("--leakscope", default=DEFAULT_LEAKSCOPE, help="leakscope binary")
    a = ap.parse_args()
    a.minutes = a.minutes if a.minutes is not None else (1.0 if a.quick else 6.0)
    a.poll = a.poll if a.poll is not None else (10.0 if a.quick else 30.0)
    a.plain_seconds = a.plain_seconds if a.plain_seconds is not None else (
        15.0 if a.quick else 60.0)
    for path, what in ((a.leakscope, "leakscope (build it: cmake --build build -j2)"),
                       (a.python, "python (--python)")):
        if not os.access(path, os.X_OK):
            ap.error(f"{what} not executable: {path}")
    a.leakscope = os.path.abspath(a.leakscope)
    a.workload_args = ["--churn-mb-s", f"{a.churn_mb_s:g}", "--leak-mib-min",
                       f"{a.leak_mib_min:g}"]
    line = marked_line()
    true_rate = a.leak_mib_min  # MiB/min
    seconds = a.minutes * 60.0

    os.makedirs(CACHE_DIR, exist_ok=True)
    work = tempfile.mkdtemp(prefix="leak-detection-", dir=CACHE_DIR)
    cap = os.path.join(work, "capture.lsc")
    stats = os.path.join(work, "tool-stats.json")
    argv = [a.leakscope, "run", "-q", "--sample-rate", str(a.sample_rate),
            "--interval", f"{a.interval:g}", "-o", cap, "--",
            a.python, WORKLOAD, f"{seconds:g}", "--stats", stats, *a.workload_args]
    started = time.time()
    load0 = os.getloadavg()
    rev = git_rev()
    print(f"leakscope leak-detection scenario  rev {rev}  "
          f"{time.strftime('%Y-%m-%d %H:%M:%S')}  ({os.cpu_count()} cpus, load {load0[0]:.2f})")
    print(f"workload: {os.path.relpath(WORKLOAD, REPO)} for {a.minutes:g} min: "
          f"{a.churn_mb_s:g} MB/s of transient buffers (+ small objects), leak "
          f"{true_rate:g} MiB/min in 1 KiB pieces at leak_steady.py:{line}")
    print("tool: " + " ".join(["leakscope", *argv[1:argv.index("--")]]) + " -- python3.11 ...")
    print(f"live `leakscope report --format json` every {a.poll:g} s; detected = verdict leak, "
          f"top leak site leak_steady.py:{line}, rate within {a.tolerance:.0%} of "
          f"{true_rate:g} MiB/min")
    print()
    hdr = (f"{'elapsed':>8} {'verdict':<12} {'#leaks':>6} {'top leak site':<22} "
           f"{'MiB/min':>8} {'error':>7} {'live est/true':>13} {'capture':>10} {'report s':>8}  "
           f"detected")
    print(hdr)
    print("-" * len(hdr), flush=True)

    rows = []
    err_tmp = tempfile.TemporaryFile()
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=err_tmp, cwd=work)
    status = ru = None
    next_poll = a.poll

    def poll_once(label_s: float, final: bool) -> None:
        if not os.path.exists(cap):
            print(f"{label_s:>7.0f}s  (no capture yet)", flush=True)
            return
        wall, doc, err = report(a.leakscope, cap)
        size = os.path.getsize(cap)
        row = {"elapsed_s": label_s, "final": final, "report_s": wall, "capture_bytes": size,
               "error": err}
        if doc is None:
            print(f"{label_s:>7.0f}s  report failed: {err}", flush=True)
            rows.append(row)
            return
        leaks = doc.get("leaks") or []
        row["verdict"] = doc.get("verdict")
        row["n_leaks"] = len(leaks)
        row["capture_duration_s"] = doc.get("capture", {}).get("duration_s")
        row["alloc_bytes"] = doc.get("totals", {}).get("alloc_bytes")
        site, rate, rel, ok = "-", None, None, False
        # live bytes at the marked line: the report's estimate vs the paced truth
        true_live = true_rate * MiB * min(label_s, seconds) / 60
        est_live = None
        if leaks:
            site, f, ln = top_site(leaks[0])
            est_live = leaks[0].get("bytes")
            rate = leaks[0].get("rate_bytes_per_s", 0.0) * 60 / MiB
            rel = (rate - true_rate) / true_rate
            ok = (row["verdict"] == "leak" and f is not None and
                  str(f).endswith("leak_steady.py") and ln == line and abs(rel) <= a.tolerance)
        row.update(site=site, rate_mib_min=rate, rel_error=rel, detected=ok,
                   site_bytes=est_live, true_live_bytes=true_live)
        live = (f"{'-' if est_live is None else f'{est_live / MiB:.1f}'}/"
                f"{true_live / MiB:.1f}")
        rows.append(row)
        lab = f"{label_s:.0f}s" + (" end" if final else "")
        print(f"{lab:>8} {str(row['verdict']):<12} {len(leaks):>6} {site:<22} "
              f"{'-' if rate is None else f'{rate:.2f}':>8} "
              f"{'-' if rel is None else f'{rel:+.0%}':>7} {live:>13} {fmt_size(size):>10} "
              f"{wall:>8.2f}  {'yes' if ok else 'no'}", flush=True)

    try:
        while True:
            pid, st, r = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                status, ru = st, r
                break
            el = time.perf_counter() - t0
            if el >= next_poll:
                poll_once(next_poll, False)
                next_poll += a.poll
            time.sleep(min(0.2, max(0.01, next_poll - (time.perf_counter() - t0))))
        tool_wall = time.perf_counter() - t0
        poll_once(tool_wall, True)
        code = os.waitstatus_to_exitcode(status)
        tool_cpu = ru.ru_utime + ru.ru_stime
        tstats = read_json(stats)
        if code != 0:
            err_tmp.seek(0)
            print(f"!! leakscope run exited {code}: "
                  f"{err_tmp.read()[-400:].decode('utf-8', 'replace').strip()}")
        cap_size = os.path.getsize(cap) if os.path.exists(cap) else None

        plain = None
        if a.plain_seconds > 0:
            log(f"plain run of {a.plain_seconds:g} s for the CPU comparison")
            plain = run_plain(a, a.plain_seconds, os.path.join(work, "plain-stats.json"))
    finally:
        if proc.poll() is None and status is None:
            proc.terminate()
            proc.wait()
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)

    print()
    final = rows[-1] if rows else {}
    first = next((r for r in rows if r.get("detected")), None)
    if first:
        held = all(r.get("detected") for r in rows if r["elapsed_s"] >= first["elapsed_s"])
        t = first["elapsed_s"]
        print(f"first detection: {t:.0f} s ({t / 60:.1f} min) after start: verdict leak, "
              f"{first['site']}, {first['rate_mib_min']:.2f} MiB/min "
              f"({first['rel_error']:+.0%})  target <= {a.target_minutes:g} min "
              f"{'ok' if t <= a.target_minutes * 60 else 'MISS'}; "
              f"{'held at every later report' if held else 'NOT held at every later report'}")
    else:
        print(f"first detection: never within the {a.minutes:g}-minute run  "
              f"target <= {a.target_minutes:g} min MISS")
    first_site = next((r for r in rows if r.get("verdict") == "leak" and
                       r.get("site") == f"leak_steady.py:{line}"), None)
    if first_site:
        print(f"first 'leak' verdict with leak_steady.py:{line} on top (any rate): "
              f"{first_site['elapsed_s']:.0f} s, {first_site['rate_mib_min']:.2f} MiB/min "
              f"({first_site['rel_error']:+.0%})")
    if final.get("site_bytes") is not None and tstats:
        true_b = tstats["leaked_bytes"]
        print(f"at the end, live at the top leak site: {final['site_bytes'] / MiB:.2f} MiB "
              f"estimated vs {true_b / MiB:.2f} MiB really kept at the marked line "
              f"({(final['site_bytes'] - true_b) / true_b:+.0%})")
    if cap_size is not None:
        print(f"capture size at the end: {fmt_size(cap_size)} ({cap_size:,} B) for "
              f"{tool_wall:.0f} s = {cap_size / tool_wall * 60 / 1024:.1f} KiB/min")
    if tstats:
        el = tstats["elapsed_s"]
        print(f"under the tool: transient buffers {tstats['churn_buffer_bytes'] / el / 1e6:.0f} "
              f"MB/s measured by the workload (small objects not counted), "
              f"{tstats['requests'] / el:,.0f} requests/s; leaked "
              f"{tstats['leaked_bytes'] / MiB:.2f} MiB in {el:.0f} s = "
              f"{tstats['leaked_bytes'] / MiB / (el / 60):.2f} MiB/min")
    if final.get("alloc_bytes") and final.get("capture_duration_s"):
        # the tool's own figure for everything allocated (sampled: an unbiased estimate)
        print(f"leakscope's estimate of all allocations: "
              f"{final['alloc_bytes'] / final['capture_duration_s'] / 1e6:.0f} MB/s "
              f"(totals.alloc_bytes / capture.duration_s of the final report)")
    if plain and plain["stats"]:
        ps = plain["stats"]
        el = ps["elapsed_s"]
        print(f"plain: transient buffers {ps['churn_buffer_bytes'] / el / 1e6:.0f} MB/s, "
              f"{ps['requests'] / el:,.0f} requests/s, leak "
              f"{ps['leaked_bytes'] / MiB / (el / 60):.2f} MiB/min ({el:.0f} s run)")
        pc = plain["cpu"] / plain["wall"]
        tc = tool_cpu / tool_wall
        print(f"CPU (user+sys of the process tree per wall second, same paced work): plain "
              f"{pc * 100:.1f}%, leakscope sampled {tc * 100:.1f}%  -> ratio {tc / pc:.2f}x "
              f"({tc * 60 - pc * 60:+.2f} CPU s per minute)")
    elif plain:
        print(f"plain run failed (exit {plain['code']})")
    log(f"took {time.time() - started:.0f} s; load avg now {os.getloadavg()[0]:.2f}")
    if a.keep:
        print(f"capture kept: {cap}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
