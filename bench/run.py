#!/usr/bin/env python3
"""leakscope side-by-side benchmark.  Run from anywhere:  python3 bench/run.py

Each measured tool run is paired with a plain run of the same workload just before it
(plain, tool, plain, tool, ...), and the figures printed are MEDIANS over the pairs of
    tool CPU / plain CPU   (user+sys of the whole child process tree, from os.wait4)
    tool wall / plain wall
See bench/README.md for the columns and targets.  Standard library only.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH_DIR)
WORKLOAD_DIR = os.path.join(BENCH_DIR, "workloads")
CACHE_DIR = os.path.join(BENCH_DIR, ".build")
DEFAULT_PYTHON = "/root/.pyenv/versions/3.11.7/bin/python3.11"
DEFAULT_LEAKSCOPE = os.path.join(REPO, "build", "leakscope")
DEFAULT_HEAPTRACK = "/usr/bin/heaptrack"
ATTRIBUTION_MARK = "BENCH-ATTRIBUTION-MARK"

# key -> (name, file, default size, is_python)
WORKLOADS = {
    "a": ("alloc_heavy", "alloc_heavy.py", 1_000_000, True),
    "b": ("call_heavy", "call_heavy.py", 12_000_000, True),
    "b2": ("call_heavy_range", "call_heavy_range.py", 12_000_000, True),
    "c": ("keep_tuples", "keep_tuples.py", 200_000, True),
    "d": ("native_loop", "native_loop.cpp", 5_000_000, False),
    # real programs (Debian's packages, so Debian's interpreter only): see REAL_PROGRAMS
    "mypy": ("mypy", None, 0, True),
    "black": ("black", None, 0, True),
}
DEBIAN_PYTHON = "/usr/bin/python3"
INTERPRETERS = {"debian": DEBIAN_PYTHON, "pyenv": DEFAULT_PYTHON}
# Real programs on real inputs (copies, so that mypy does not take them for the standard
# library's): Debian's mypy type-checking textwrap.py (491 lines), Debian's black formatting
# mypy's checker.py (7,553 lines) with --diff. {dir}: where the copies are. Exit statuses
# that are the program's normal answers (mypy: 1 when it found errors).
REAL_PROGRAMS = {
    "mypy": (["/usr/bin/mypy", "--cache-dir=/dev/null", "--no-color-output", "{dir}/textwrap_copy.py"], (0, 1)),
    "black": (["/usr/bin/black", "--diff", "--no-color", "-q", "{dir}/checker_copy.py"], (0,)),
}
REAL_INPUTS = {"textwrap_copy.py": "/usr/lib/python3.11/textwrap.py",
               "checker_copy.py": "/usr/lib/python3/dist-packages/mypy/checker.py"}

# tool id -> label
TOOL_LABELS = {
    "leakscope": "leakscope run",            # the default: aggregate (bounded) capture
    "leakscope-events": "leakscope run --mode events",
    "leakscope-native": "leakscope run --native",
    "leakscope-sampled": "leakscope sampled 512K",
    "tracemalloc": "python -X tracemalloc=1",
    "heaptrack": "heaptrack",
}

# --sample-rate of the "leakscope-sampled" tool (mean bytes between recorded allocations)
SAMPLE_RATE = 524288

# (workload key, tool id) -> maximum CPU ratio (median), shown beside the result: issue 14's
# figures (the default mode's cost on the allocation-heavy loop, the int-allocating call loop
# (b2), the keep-tuples loop, the native loop and real programs; sampling at 512 KiB at most
# 1.05 everywhere), and (b)'s: calls that allocate nothing cost next to nothing.
CPU_TARGETS = {
    ("a", "leakscope"): 1.6,
    ("b", "leakscope"): 1.10,
    ("b2", "leakscope"): 2.0,
    ("c", "leakscope"): 1.8,
    ("d", "leakscope"): 1.5,
    ("mypy", "leakscope"): 1.4,
    ("black", "leakscope"): 1.4,
    ("b", "leakscope-sampled"): 1.03,
    **{(k, "leakscope-sampled"): 1.05 for k in ("a", "b2", "c", "d", "mypy", "black")},
}
# (workload key, tool id) -> maximum peak RSS ratio (median): the keep-tuples loop keeps about
# 3 million objects live.
RSS_TARGETS = {("c", "leakscope"): 1.3, ("c", "leakscope-sampled"): 1.05}
BYTES_PER_EVENT_TARGET = 1.0
BIG_REPORT_TARGET_S = 3.0


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- running


class RunResult:
    __slots__ = ("cpu", "wall", "code", "stderr_tail", "rss")

    def __init__(self, cpu: float, wall: float, code: int, stderr_tail: str, rss: int = 0):
        self.cpu, self.wall, self.code, self.stderr_tail, self.rss = cpu, wall, code, stderr_tail, rss


def run_measured(argv: list[str], cwd: str) -> RunResult:
    """Run argv with output discarded; CPU = user+sys of the child and all descendants it
    waited for (os.wait4 rusage), wall = perf_counter around spawn..reap, rss = the largest
    peak RSS among them (the program's, under `leakscope run`)."""
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=err)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        tail = ""
        if p.returncode != 0:
            err.seek(0)
            tail = err.read()[-600:].decode("utf-8", "replace").strip()
    return RunResult(ru.ru_utime + ru.ru_stime, wall, p.returncode, tail, ru.ru_maxrss * 1024)


def timed_output(argv: list[str]) -> tuple[float, int, bytes, str]:
    t0 = time.perf_counter()
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    wall = time.perf_counter() - t0
    return wall, p.returncode, p.stdout, p.stderr[-600:].decode("utf-8", "replace").strip()


def timed_rss(argv: list[str]) -> tuple[float, int, int, str]:
    """Wall seconds, peak RSS (bytes) and exit status of one command; stdout discarded."""
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    err = p.stderr.read()[-600:].decode("utf-8", "replace").strip()
    p.stderr.close()
    return wall, ru.ru_maxrss * 1024, os.waitstatus_to_exitcode(status), err


# What the big capture is rendered to, side by side (issue 11: html and pprof within 3x of the
# text report). Output paths are fresh names in the capture's folder.
BIG_RENDERS = [("text report", ["report", "{cap}"]),
               ("html", ["report", "{cap}", "--format", "html", "-o", "{out}.html"]),
               ("pprof", ["export", "{cap}", "--format", "pprof", "-o", "{out}.pb.gz"])]
BIG_RENDER_RATIO_TARGET = 3.0


def dir_size(path: str) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total


# ---------------------------------------------------------------------------- setup


def build_native(fname: str) -> str:
    """Compile bench/workloads/FNAME (C++) with g++ -O2 -g into bench/.build/, cached by a
    hash of the source and flags; returns the executable's path."""
    src = os.path.join(WORKLOAD_DIR, fname)
    flags = ["-O2", "-g"]
    with open(src, "rb") as f:
        digest = hashlib.sha256(f.read() + " ".join(flags).encode()).hexdigest()[:12]
    os.makedirs(CACHE_DIR, exist_ok=True)
    exe = os.path.join(CACHE_DIR, f"{os.path.splitext(fname)[0]}-{digest}")
    if not os.path.exists(exe):
        tmp = f"{exe}.tmp{os.getpid()}"
        subprocess.run(["g++", *flags, "-o", tmp, src], check=True)
        os.replace(tmp, exe)
        log(f"compiled {exe}")
    return exe


def build_native_loop() -> str:
    return build_native("native_loop.cpp")


def workload_cmd(key: str, size: int, python: str, native_exe: str, real_dir: str = "") -> list[str]:
    _, fname, _, is_py = WORKLOADS[key]
    if key in REAL_PROGRAMS:
        return [python] + [x.format(dir=real_dir) for x in REAL_PROGRAMS[key][0]]
    if is_py:
        return [python, os.path.join(WORKLOAD_DIR, fname), str(size)]
    return [native_exe, str(size)]


def tool_cmd(tool: str, cmd: list[str], capdir: str, a) -> list[str]:
    if tool == "plain":
        return cmd
    if tool == "leakscope":
        return [a.leakscope, "run", "-q", "-o", os.path.join(capdir, "capture.lsc"), "--", *cmd]
    if tool == "leakscope-events":
        return [a.leakscope, "run", "-q", "--mode", "events", "-o", os.path.join(capdir, "capture.lsc"), "--", *cmd]
    if tool == "leakscope-native":
        return [a.leakscope, "run", "-q", "--native", "-o", os.path.join(capdir, "capture.lsc"),
                "--", *cmd]
    if tool == "leakscope-sampled":
        return [a.leakscope, "run", "-q", "--sample-rate", str(SAMPLE_RATE),
                "-o", os.path.join(capdir, "capture.lsc"), "--", *cmd]
    if tool == "tracemalloc":
        return [cmd[0], "-X", "tracemalloc=1", *cmd[1:]]
    if tool == "heaptrack":
        return [a.heaptrack, "-o", os.path.join(capdir, "heaptrack"), *cmd]
    raise ValueError(tool)


def tools_for(key: str) -> list[str]:
    if key in REAL_PROGRAMS:
        return ["leakscope", "leakscope-events", "leakscope-sampled", "tracemalloc"]
    if WORKLOADS[key][3]:
        return ["leakscope", "leakscope-events", "leakscope-native", "leakscope-sampled", "tracemalloc", "heaptrack"]
    return ["leakscope", "leakscope-events", "leakscope-native", "leakscope-sampled", "heaptrack"]


def marker_line() -> int:
    with open(os.path.join(WORKLOAD_DIR, "keep_tuples.py")) as f:
        for n, line in enumerate(f, 1):
            if ATTRIBUTION_MARK in line and not line.lstrip().startswith(("#", '"')) \
                    and "KEPT.append" in line:
                return n
    raise SystemExit("keep_tuples.py: marker comment not found")


def leakscope_report(a, capture: str) -> dict:
    """Time the text report (what a user runs), then read events etc. from the JSON one."""
    out = {}
    wall, code, _, err = timed_output([a.leakscope, "report", capture])
    out["report_s"] = wall if code == 0 else None
    if code != 0:
        out["report_error"] = f"text report exit {code}: {err}"
    wall_j, code, stdout, err = timed_output([a.leakscope, "report", capture, "--format", "json"])
    out["report_json_s"] = wall_j if code == 0 else None
    if code != 0:
        out["report_error"] = f"json report exit {code}: {err}"
        return out
    try:
        out["json"] = json.loads(stdout)
    except ValueError as e:
        out["report_error"] = f"json report not parseable: {e}"
    return out


def attribution(doc: dict, expect_line: int) -> tuple[bool, str]:
    stacks = [s for s in doc.get("stacks", []) if s.get("layer") == "python"]
    if not stacks:
        return False, "no python-layer stack in report"
    top = stacks[0]
    frames = [f for f in top.get("frames", []) if not f.get("native")]
    if not frames:
        return False, "top python-layer stack has no Python frame"
    f = frames[0]
    where = f"{os.path.basename(str(f.get('file')))}:{f.get('line')} in {f.get('function')}"
    ok = str(f.get("file", "")).endswith("keep_tuples.py") and f.get("line") == expect_line
    return ok, (f"top python stack ({top.get('bytes', 0) / 2**20:.1f} MiB, "
                f"{top.get('count', 0):,} blocks) innermost {where}")


# ---------------------------------------------------------------------------- formatting


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def git_rev() -> str:
    """short hash of the checked-out revision, or '?'"""
    r = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return r.stdout.strip() or "?"


def fmt_size(n) -> str:
    """Bytes for people: 1.5 MiB; '-' for unknown."""
    if n is None:
        return "-"
    for unit, div in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= div:
            return f"{n / div:.1f} {unit}"
    return f"{n:.0f} B"


def fmt(x, spec=".2f", suffix="") -> str:
    return "-" if x is None else f"{x:{spec}}{suffix}"


def verdict(value, limit) -> str:
    if limit is None:
        return ""
    if value is None:
        return f"<={limit:g} n/a"
    return f"<={limit:g} {'ok' if value <= limit else 'MISS'}"


# ---------------------------------------------------------------------------- main


def bench_workload(key: str, a, native_exe: str, expect_line: int) -> dict:
    name, _, default_size, is_py = WORKLOADS[key]
    size = max(1, int(default_size * a.scale))
    cmd = workload_cmd(key, size, a.python, native_exe, a.real_dir)
    ok_codes = REAL_PROGRAMS[key][1] if key in REAL_PROGRAMS else (0,)
    tools = tools_for(key)
    res = {"workload": name, "size": size, "argv": cmd, "python": a.python,
           "plain": {"cpu": [], "wall": [], "rss": []},
           "tools": {t: {"label": TOOL_LABELS[t], "cpu_ratio": [], "wall_ratio": [], "rss": [], "rss_ratio": [],
                         "capture_bytes": [], "events": [], "report_s": [],
                         "failures": []} for t in tools}}
    log(f"[{name}] size {size}: warm-up")
    warm = run_measured(cmd, WORKLOAD_DIR)
    if warm.code not in ok_codes:
        raise SystemExit(f"{name}: plain run failed (exit {warm.code}): {warm.stderr_tail}")
    keep_json = {}
    for rep in range(a.repeat):
        for tool in tools:
            plain = run_measured(cmd, WORKLOAD_DIR)
            if plain.code not in ok_codes:
                raise SystemExit(f"{name}: plain run failed (exit {plain.code}): "
                                 f"{plain.stderr_tail}")
            capdir = tempfile.mkdtemp(prefix=f"{name}-{tool}-", dir=a.capture_dir)
            try:
                r = run_measured(tool_cmd(tool, cmd, capdir, a), WORKLOAD_DIR)
                t = res["tools"][tool]
                res["plain"]["cpu"].append(plain.cpu)
                res["plain"]["wall"].append(plain.wall)
                res["plain"]["rss"].append(plain.rss)
                log(f"[{name}] pair {rep + 1}/{a.repeat} {tool}: plain {plain.cpu:.3f}s cpu "
                    f"{plain.wall:.3f}s wall; tool {r.cpu:.3f}s cpu {r.wall:.3f}s wall"
                    + (f"  EXIT {r.code}" if r.code else ""))
                if r.code != plain.code:
                    t["failures"].append(f"exit {r.code}: {r.stderr_tail}")
                    continue
                t["cpu_ratio"].append(r.cpu / plain.cpu if plain.cpu > 0 else None)
                t["wall_ratio"].append(r.wall / plain.wall)
                t["rss"].append(r.rss)
                t["rss_ratio"].append(r.rss / plain.rss if plain.rss else None)
                if tool == "tracemalloc":
                    continue
                size_b = dir_size(capdir)
                t["capture_bytes"].append(size_b)
                if size_b == 0:
                    t["failures"].append("no capture written")
                if tool.startswith("leakscope"):
                    rep_out = leakscope_report(a, os.path.join(capdir, "capture.lsc"))
                    t["report_s"].append(rep_out.get("report_s"))
                    if "report_error" in rep_out:
                        t["failures"].append(rep_out["report_error"])
                    doc = rep_out.get("json")
                    if doc:
                        cap = doc.get("capture", {})
                        t["events"].append(cap.get("events"))
                        if not cap.get("complete", True):
                            t["failures"].append("capture marked incomplete")
                        if key == "c" and tool not in keep_json:
                            keep_json[tool] = doc
            finally:
                shutil.rmtree(capdir, ignore_errors=True)
    if key == "c":
        res["attribution"] = {}
        for tool in ("leakscope", "leakscope-native"):
            if tool in keep_json:
                ok, detail = attribution(keep_json[tool], expect_line)
            else:
                ok, detail = False, "no readable capture"
            res["attribution"][tool] = {"pass": ok, "detail": detail,
                                        "expected_line": expect_line}
    # summaries
    res["plain"]["cpu_median"] = med(res["plain"]["cpu"])
    res["plain"]["wall_median"] = med(res["plain"]["wall"])
    res["plain"]["rss_median"] = med(res["plain"]["rss"])
    for tool, t in res["tools"].items():
        t["cpu_ratio_median"] = med(t["cpu_ratio"])
        t["wall_ratio_median"] = med(t["wall_ratio"])
        t["rss_median"] = med(t["rss"])
        t["rss_ratio_median"] = med(t["rss_ratio"])
        t["capture_bytes_median"] = med(t["capture_bytes"])
        bpe = [b / e for b, e in zip(t["capture_bytes"], t["events"]) if e]
        t["bytes_per_event"] = bpe
        t["bytes_per_event_median"] = med(bpe)
        t["events_median"] = med(t["events"])
        t["report_s_median"] = med(t["report_s"])
        t["cpu_target"] = CPU_TARGETS.get((key, tool))
        t["rss_target"] = RSS_TARGETS.get((key, tool))
    return res


def print_workload(key: str, res: dict) -> None:
    p = res["plain"]
    print()
    key = key.split("@")[0]
    size = "" if key in REAL_PROGRAMS else f"  size={res['size']:,}"
    print(f"({key}) {res['workload']} [{res.get('interpreter', '')}]{size}  plain median: "
          f"cpu {fmt(p['cpu_median'], '.3f', ' s')}, wall {fmt(p['wall_median'], '.3f', ' s')}, "
          f"peak RSS {fmt_size(p['rss_median'])}  (n={len(p['cpu'])})")
    hdr = (f"  {'tool':<24} {'CPU ratio':>9} {'wall ratio':>10} {'peak RSS':>16} {'capture':>10} "
           f"{'B/event':>8} {'report s':>8}  targets")
    print(hdr)
    print("  " + "-" * (len(hdr) - 2 + 14))
    print(f"  {'plain':<24} {'1.00':>9} {'1.00':>10} {fmt_size(p['rss_median']) + ' 1.00x':>16} {'-':>10} "
          f"{'-':>8} {'-':>8}")
    for tool, t in res["tools"].items():
        tgt = []
        if t["cpu_target"] is not None:
            tgt.append("cpu " + verdict(t["cpu_ratio_median"], t["cpu_target"]))
        if t.get("rss_target") is not None:
            tgt.append("rss " + verdict(t["rss_ratio_median"], t["rss_target"]))
        if tool == "leakscope-sampled":
            # a sampled capture records ~1 allocation per SAMPLE_RATE bytes, so its fixed
            # content (header, definitions, snapshots) dominates: B/event does not apply
            tgt.append("B/ev n/a (sampled)")
        elif tool.startswith("leakscope"):
            tgt.append("B/ev " + verdict(t["bytes_per_event_median"], BYTES_PER_EVENT_TARGET))
        bpe = t["bytes_per_event_median"]
        rss = f"{fmt_size(t['rss_median'])} {fmt(t['rss_ratio_median'])}x"
        print(f"  {t['label']:<24} {fmt(t['cpu_ratio_median']):>9} "
              f"{fmt(t['wall_ratio_median']):>10} {rss:>16} {fmt_size(t['capture_bytes_median']):>10} "
              f"{fmt(bpe, '.3f') if bpe is not None else '-':>8} "
              f"{fmt(t['report_s_median']):>8}  {'; '.join(tgt)}")
        for f in dict.fromkeys(t["failures"]):
            print(f"      !! {t['label']}: {f}")
    if "attribution" in res:
        for tool, at in res["attribution"].items():
            print(f"  attribution ({TOOL_LABELS[tool]}): {'PASS' if at['pass'] else 'FAIL'}  "
                  f"expected keep_tuples.py:{at['expected_line']}; {at['detail']}")


def big_capture(a, native_exe: str, results: dict) -> dict:
    # events per alloc_heavy iteration: from the (a) runs if we have them, else calibrate
    epi = None
    if "a" in results:
        ev = results["a"]["tools"]["leakscope"]["events_median"]
        if ev:
            epi = ev / results["a"]["size"]
    if epi is None:
        n = 100_000
        capdir = tempfile.mkdtemp(prefix="calib-", dir=a.capture_dir)
        try:
            cap = os.path.join(capdir, "capture.lsc")
            r = run_measured(tool_cmd("leakscope-events", workload_cmd("a", n, a.python, native_exe),
                                      capdir, a), WORKLOAD_DIR)
            if r.code != 0:
                return {"error": f"calibration run failed (exit {r.code}): {r.stderr_tail}"}
            _, code, out, err = timed_output([a.leakscope, "report", cap, "--format", "json"])
            if code != 0:
                return {"error": f"calibration report failed: {err}"}
            epi = json.loads(out)["capture"]["events"] / n
        finally:
            shutil.rmtree(capdir, ignore_errors=True)
    iters = max(1, math.ceil(a.big_events / epi))
    capdir = tempfile.mkdtemp(prefix="big-", dir=a.capture_dir)
    out = {"target_events": a.big_events, "iterations": iters}
    try:
        cap = os.path.join(capdir, "capture.lsc")
        log(f"[big] alloc_heavy {iters:,} iterations (~{epi:.1f} events/iteration)")
        r = run_measured(tool_cmd("leakscope-events", workload_cmd("a", iters, a.python, native_exe),
                                  capdir, a), WORKLOAD_DIR)
        out["record_wall_s"] = r.wall
        if r.code != 0:
            out["error"] = f"leakscope run failed (exit {r.code}): {r.stderr_tail}"
            return out
        out["capture_bytes"] = os.path.getsize(cap)
        times = []
        for i in range(max(1, min(3, a.repeat))):
            wall, code, _, err = timed_output([a.leakscope, "report", cap])
            if code != 0:
                out["error"] = f"leakscope report failed (exit {code}): {err}"
                return out
            times.append(wall)
            log(f"[big] report {i + 1}: {wall:.2f} s")
        out["report_s"] = times
        out["report_s_median"] = statistics.median(times)
        renders = {name: {"s": [], "rss": []} for name, _ in BIG_RENDERS}
        for i in range(max(1, min(3, a.repeat))):
            for name, args in BIG_RENDERS:
                argv = [a.leakscope] + [x.format(cap=cap, out=os.path.join(capdir, f"r{i}")) for x in args]
                wall, rss, code, err = timed_rss(argv)
                if code != 0:
                    out["error"] = f"leakscope {' '.join(args[:3])} failed (exit {code}): {err}"
                    return out
                renders[name]["s"].append(wall)
                renders[name]["rss"].append(rss)
                log(f"[big] {name} {i + 1}: {wall:.2f} s, peak RSS {fmt_size(rss)}")
        out["renders"] = {k: {"s_median": statistics.median(v["s"]), "rss_median": statistics.median(v["rss"]), **v}
                          for k, v in renders.items()}
        wall, code, stdout, err = timed_output([a.leakscope, "report", cap, "--format", "json"])
        out["report_json_s"] = wall
        if code != 0:
            out["error"] = f"leakscope report --format json failed (exit {code}): {err}"
            return out
        out["events"] = json.loads(stdout)["capture"]["events"]
    finally:
        shutil.rmtree(capdir, ignore_errors=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=None, help="pairs per tool (default 5)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: 1 pair, sizes x0.1, 2M-event big capture")
    ap.add_argument("--only", default="a,b,b2,c,d,mypy,black", help="workloads to run, e.g. a,c")
    ap.add_argument("--scale", type=float, default=None,
                    help="multiply every workload size (default 1, --quick 0.1)")
    ap.add_argument("--big-events", type=int, default=None,
                    help="events in the report-speed capture (default 50,000,000; --quick 2M)")
    ap.add_argument("--skip-big", action="store_true", help="skip the big-capture report test")
    ap.add_argument("--json", metavar="OUT", help="also write the results as JSON")
    ap.add_argument("--pythons", default="debian,pyenv",
                    help=f"interpreters, each measured and printed: debian ({DEBIAN_PYTHON}), pyenv ({DEFAULT_PYTHON})")
    ap.add_argument("--python", default=None, help="one interpreter instead of --pythons")
    ap.add_argument("--leakscope", default=DEFAULT_LEAKSCOPE, help="leakscope binary")
    ap.add_argument("--heaptrack", default=DEFAULT_HEAPTRACK, help="heaptrack script")
    a = ap.parse_args()
    a.repeat = a.repeat if a.repeat is not None else (1 if a.quick else 5)
    a.scale = a.scale if a.scale is not None else (0.1 if a.quick else 1.0)
    a.big_events = a.big_events if a.big_events is not None else (
        2_000_000 if a.quick else 50_000_000)
    if a.repeat < 1:
        ap.error("--repeat must be >= 1")
    only = [k.strip() for k in a.only.split(",") if k.strip()]
    for k in only:
        if k not in WORKLOADS:
            ap.error(f"--only: unknown workload {k!r} (choose from {','.join(WORKLOADS)})")
    if a.python:
        pythons = [("custom", os.path.abspath(a.python))]
    else:
        pythons = []
        for tag in (t.strip() for t in a.pythons.split(",") if t.strip()):
            if tag not in INTERPRETERS:
                ap.error(f"--pythons: unknown {tag!r} (choose from {','.join(INTERPRETERS)})")
            pythons.append((tag, INTERPRETERS[tag]))
    for path, what in ((a.leakscope, "leakscope (build it: cmake --build build -j2)"),
                       *((py, f"python ({tag})") for tag, py in pythons), (a.heaptrack, "heaptrack (--heaptrack)")):
        if not os.access(path, os.X_OK):
            ap.error(f"{what} not executable: {path}")
    a.leakscope = os.path.abspath(a.leakscope)

    os.makedirs(CACHE_DIR, exist_ok=True)
    a.capture_dir = tempfile.mkdtemp(prefix="captures-", dir=CACHE_DIR)
    a.real_dir = tempfile.mkdtemp(prefix="real-inputs-", dir=CACHE_DIR)
    for name, src in REAL_INPUTS.items():
        if os.path.exists(src):
            shutil.copyfile(src, os.path.join(a.real_dir, name))
    native_exe = build_native_loop() if "d" in only else ""
    expect_line = marker_line()
    pyvers = {tag: subprocess.run([py, "-c", "import sys; print(sys.version.split()[0])"],
                                  capture_output=True, text=True).stdout.strip() for tag, py in pythons}
    rev = git_rev()
    load0 = os.getloadavg()
    started = time.time()

    results, big = {}, None
    try:
        for tag, py in pythons:
            a.python = py
            for k in only:
                if k in REAL_PROGRAMS and py != DEBIAN_PYTHON:
                    log(f"[{k}] skipped under {tag}: Debian's {k} runs on Debian's python3")
                    continue
                if k == "d" and tag != pythons[0][0]:
                    continue  # native: no interpreter
                results[f"{k}@{tag}"] = bench_workload(k, a, native_exe, expect_line)
                results[f"{k}@{tag}"]["interpreter"] = f"{tag} {pyvers[tag]}" if k != "d" else "native"
        if not a.skip_big:
            a.python = pythons[-1][1]
            big = big_capture(a, native_exe, {k.split("@")[0]: v for k, v in results.items()
                                              if k.endswith("@" + pythons[-1][0])})
    finally:
        shutil.rmtree(a.capture_dir, ignore_errors=True)
        shutil.rmtree(a.real_dir, ignore_errors=True)

    load1 = os.getloadavg()
    print(f"leakscope benchmark  rev {rev}  {time.strftime('%Y-%m-%d %H:%M:%S')}  "
          f"host {platform.node()} ({os.cpu_count()} cpus)")
    print(f"pythons {', '.join(f'{tag} {py} ({pyvers[tag]})' for tag, py in pythons)}; pairs per tool {a.repeat}; "
          f"scale {a.scale:g}; "
          f"load avg {load0[0]:.2f} -> {load1[0]:.2f}; took {time.time() - started:.0f} s")
    print("ratios = median over pairs of (tool / plain run just before it); "
          "CPU = user+sys of the child tree")
    for k in results:
        print_workload(k, results[k])
    if big is not None:
        print()
        if "error" in big:
            print(f"report on a big capture: ERROR {big['error']}")
        else:
            print(f"report on a big capture: {big['report_s_median']:.2f} s (median of "
                  f"{len(big['report_s'])}) for {big['events']:,} events, "
                  f"{fmt_size(big['capture_bytes'])} "
                  f"({big['capture_bytes'] / max(1, big['events']):.3f} B/event); "
                  f"json report {big['report_json_s']:.2f} s; recording took "
                  f"{big['record_wall_s']:.1f} s  target <={BIG_REPORT_TARGET_S:g} s "
                  f"{'ok' if big['report_s_median'] <= BIG_REPORT_TARGET_S else 'MISS'}"
                  + ("" if big["events"] >= 45_000_000 else
                     "  (fewer than 50M events: target applies to 50M)"))
            base = big["renders"]["text report"]
            for name, r in big["renders"].items():
                ratio = r["s_median"] / max(1e-9, base["s_median"])
                verdict = "" if name == "text report" else (
                    f"  target <={BIG_RENDER_RATIO_TARGET:g}x {'ok' if ratio <= BIG_RENDER_RATIO_TARGET else 'MISS'}")
                print(f"  {name:12s} {r['s_median']:.2f} s ({ratio:.2f}x the text report), "
                      f"peak RSS {fmt_size(r['rss_median'])}{verdict}")
    if a.json:
        doc = {"rev": rev, "time": started, "pythons": dict(pythons), "python_versions": pyvers,
               "repeat": a.repeat, "scale": a.scale, "loadavg": [load0, load1],
               "workloads": results, "big_capture": big,
               "targets": {"cpu": {f"{k}/{t}": v for (k, t), v in CPU_TARGETS.items()},
                           "rss": {f"{k}/{t}": v for (k, t), v in RSS_TARGETS.items()},
                           "bytes_per_event": BYTES_PER_EVENT_TARGET,
                           "sample_rate": SAMPLE_RATE,
                           "big_report_s": BIG_REPORT_TARGET_S}}
        with open(a.json, "w") as f:
            json.dump(doc, f, indent=2)
        print(f"\nwrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
