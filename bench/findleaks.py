#!/usr/bin/env python3
"""leakscope reachability benchmark: how long is a big process stopped by `findleaks`, what
does the scan cost it and the CLI, and how fast and big is a heap dump?

    python3 bench/findleaks.py [--size-mib 1024] [--quick] [--only python,native] [--json OUT]

For each case a workload builds about SIZE MiB of live heap under `leakscope run`, prints
"ready" and waits for a file named "stop" in its working directory:
    python-debian  bench/workloads/big_python_heap.py under /usr/bin/python3
    python-pyenv   the same under the pyenv interpreter (bench/run.py's DEFAULT_PYTHON)
    native         bench/workloads/big_native_heap.cpp (g++ -O2 -g, cached in bench/.build/),
                   which loses 1100 blocks directly and 300 indirectly on purpose
Then, on the waiting process: `leakscope findleaks PID --format json` (wall time, the CLI's
peak RSS, the target's RSS before and after), `leakscope heapdump PID -o DUMP` (wall time,
file size, the stopped time it prints), `leakscope findleaks DUMP --format json`; then
"stop", and the program must exit 0.  One table per case on stdout, progress on stderr.
Targets (issue): stopped <= 1 s per GiB of scanned (copied) memory; heapdump of a 1 GiB heap
< 5 s.  See bench/README.md.  Standard library only.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time

# bench/ is this script's directory
from run import (CACHE_DIR, DEFAULT_LEAKSCOPE, DEFAULT_PYTHON, WORKLOAD_DIR, build_native, fmt, fmt_size, git_rev,
                 log)

DEBIAN_PYTHON = "/usr/bin/python3"
GiB = 2**30
MiB = 2**20
STOP_S_PER_GIB_TARGET = 1.0
HEAPDUMP_TARGET_S = 5.0
HEAPDUMP_TARGET_HEAP = GiB  # the heapdump target is stated for a 1 GiB heap


# ---------------------------------------------------------------------------- the target


def proc_status(pid: int) -> dict:
    """VmRSS, VmHWM... of /proc/PID/status in bytes ({} when the process is gone)."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k.startswith("Vm") and v.strip().endswith("kB"):
                    out[k] = int(v.split()[0]) * 1024
    except OSError:
        pass
    return out


def smaps(pid: int) -> dict:
    """{(start, path): rss bytes} for every mapping of pid (keyed by start: one that grew is
    the same mapping)."""
    maps, key = {}, None
    try:
        with open(f"/proc/{pid}/smaps") as f:
            for line in f:
                if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                    parts = line.split(None, 5)
                    key = (parts[0].split("-")[0], parts[5].strip() if len(parts) > 5 else "")
                    maps[key] = 0
                elif line.startswith("Rss:") and key is not None:
                    maps[key] = int(line.split()[1]) * 1024
    except OSError:
        pass
    return maps


def smaps_diff(before: dict, after: dict) -> dict:
    """Where the target's RSS changed: mappings that appeared, went away, grew or shrank."""
    new = {k: v for k, v in after.items() if k not in before}
    gone = {k: v for k, v in before.items() if k not in after}
    changed = {k: after[k] - before[k] for k in after if k in before and after[k] != before[k]}
    top = sorted(list(new.items()) + list(changed.items()), key=lambda kv: -abs(kv[1]))[:4]
    return {"new_mappings": len(new), "new_rss": sum(new.values()),
            "gone_mappings": len(gone), "gone_rss": sum(gone.values()),
            "grown_rss": sum(v for v in changed.values() if v > 0),
            "shrunk_rss": sum(v for v in changed.values() if v < 0),
            "top": [{"start": k[0], "path": k[1] or "[anon]", "delta": v,
                     "new": k in new} for k, v in top]}


class Target:
    """`leakscope run -q -o CAPTURE -- CMD` in its own directory, CMD waiting for "stop"."""

    def __init__(self, a, name: str, cmd: list[str], workdir: str):
        self.name, self.workdir = name, workdir
        self.capture = os.path.join(workdir, "capture.lsc")
        self.err = open(os.path.join(workdir, "run.stderr"), "w+b")
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen([a.leakscope, "run", "-q", "-o", self.capture, "--", *cmd],
                                     cwd=workdir, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=self.err)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.proc.stdout, selectors.EVENT_READ)
        self.buf = b""
        self.pid = None
        self.ready = {}

    def stderr_tail(self) -> str:
        self.err.flush()
        self.err.seek(0)
        return self.err.read()[-800:].decode("utf-8", "replace").strip()

    def line(self, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not self.sel.select(min(left, 1.0)):
                if left <= 0 or self.proc.poll() is not None:
                    return None
                continue
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                return None
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode("utf-8", "replace")

    def wait_ready(self, timeout: float) -> float:
        """Seconds until the workload said "ready" (its figures parsed into self.ready)."""
        deadline = time.monotonic() + timeout
        last = time.monotonic()
        while True:
            line = self.line(min(30.0, max(0.1, deadline - time.monotonic())))
            if line is not None and line.startswith("ready"):
                break
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name}: leakscope run exited {self.proc.returncode} "
                                   f"before ready: {self.stderr_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: not ready after {timeout:.0f} s")
            if time.monotonic() - last >= 30:
                last = time.monotonic()
                kids = children(self.proc.pid)
                rss = proc_status(kids[0]).get("VmRSS") if kids else None
                log(f"[{self.name}] building... {time.perf_counter() - self.t0:.0f} s, "
                    f"target RSS {fmt_size(rss)}")
        took = time.perf_counter() - self.t0
        self.ready = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}
        self.pid = self.ready.get("pid")
        kids = children(self.proc.pid)
        if self.pid not in kids:
            raise RuntimeError(f"{self.name}: pid {self.pid} is not a child of leakscope run "
                               f"({self.proc.pid}: {kids})")
        return took

    def stop(self, timeout: float) -> tuple[int | None, float, str]:
        """Touch "stop"; (leakscope run's exit status or None on timeout, seconds, stdout)."""
        t0 = time.perf_counter()
        open(os.path.join(self.workdir, "stop"), "w").close()
        out = []
        while True:
            line = self.line(max(0.1, timeout - (time.perf_counter() - t0)))
            if line is None:
                break
            out.append(line)
        try:
            code = self.proc.wait(max(0.1, timeout - (time.perf_counter() - t0)))
        except subprocess.TimeoutExpired:
            code = None
        return code, time.perf_counter() - t0, "\n".join(out)

    def kill(self) -> None:
        """Last resort (an error or a timeout): stop what this object started."""
        if self.proc.poll() is None:
            open(os.path.join(self.workdir, "stop"), "w").close()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                if self.pid and self.pid in children(self.proc.pid):
                    os.kill(self.pid, signal.SIGKILL)
                self.proc.terminate()
                try:
                    self.proc.wait(30)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        self.sel.close()
        self.proc.stdout.close()
        self.err.close()


def children(pid: int) -> list[int]:
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


def settle(pid: int, least: float, most: float = 180) -> float:
    """Wait (at least `least` s) until the target's RSS stays within 1 MiB for 2 s: the agent's
    writer thread may still be consuming what the workload recorded last, growing its tables.
    Returns the seconds waited."""
    t0 = time.monotonic()
    hist = []
    while time.monotonic() - t0 < most:
        hist.append(proc_status(pid).get("VmRSS") or 0)
        last = hist[-5:]
        if time.monotonic() - t0 >= least and len(last) == 5 and max(last) - min(last) <= MiB:
            break
        time.sleep(0.5)
    return time.monotonic() - t0


# ---------------------------------------------------------------------------- the CLI


def run_cli(argv: list[str], workdir: str) -> dict:
    """Run a leakscope command: wall seconds, its own peak RSS (os.wait4's ru_maxrss: this
    child alone; leakscope's CLI starts no process), exit status, stdout and stderr."""
    with tempfile.TemporaryFile(dir=workdir) as out, tempfile.TemporaryFile(dir=workdir) as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, cwd=workdir, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return {"wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime, "max_rss": ru.ru_maxrss * 1024,
                "code": p.returncode, "stdout": out.read().decode("utf-8", "replace"),
                "stderr": err.read().decode("utf-8", "replace")}


def findleaks_json(r: dict) -> dict | None:
    if r["code"] != 0:
        return None
    try:
        return json.loads(r["stdout"])
    except ValueError:
        return None


def innermost(group: dict) -> str:
    """The innermost frame of a findleaks group: file:line or function, module+address."""
    for f in group.get("frames") or []:
        if f.get("file"):
            return f"{os.path.basename(f['file'])}:{f.get('line')} in {f.get('function')}"
        return f"{f.get('function') or '??'} [{os.path.basename(str(f.get('module')))} {f.get('address')}]"
    return "?"


def totals_of(doc: dict | None) -> dict:
    return ((doc or {}).get("findleaks") or {}).get("totals") or {}


# ---------------------------------------------------------------------------- one case


def measure(a, name: str, cmd: list[str], label: str, expect: str) -> dict:
    res = {"case": name, "label": label, "argv": cmd, "size_mib": a.size_mib, "errors": []}
    workdir = tempfile.mkdtemp(prefix=f"findleaks-{name}-", dir=CACHE_DIR)
    t = None
    try:
        log(f"[{name}] starting {label} ({a.size_mib} MiB)")
        t = Target(a, name, cmd, workdir)
        res["build_s"] = t.wait_ready(a.ready_timeout)
        res["workload"] = t.ready
        pid = t.pid
        log(f"[{name}] ready after {res['build_s']:.1f} s: pid {pid}, {t.ready}")
        res["steady_wait_s"] = settle(pid, a.settle)
        log(f"[{name}] target RSS steady after {res['steady_wait_s']:.1f} s")

        st0, sm0 = proc_status(pid), smaps(pid)
        res["rss_before"], res["hwm_before"] = st0.get("VmRSS"), st0.get("VmHWM")
        log(f"[{name}] findleaks {pid} (target RSS {fmt_size(res['rss_before'])})")
        r = run_cli([a.leakscope, "findleaks", str(pid), "--format", "json"], workdir)
        st1, sm1 = proc_status(pid), smaps(pid)
        res["rss_after"], res["hwm_after"] = st1.get("VmRSS"), st1.get("VmHWM")
        res["rss_added"] = (res["rss_after"] - res["rss_before"]
                            if res["rss_after"] is not None and res["rss_before"] is not None else None)
        res["hwm_added"] = (res["hwm_after"] - res["hwm_before"]
                            if res["hwm_after"] is not None and res["hwm_before"] is not None else None)
        res["smaps_diff"] = smaps_diff(sm0, sm1)
        doc = findleaks_json(r)
        live = {k: r[k] for k in ("wall_s", "cpu_s", "max_rss", "code")}
        if doc is None:
            res["errors"].append(f"findleaks {pid}: exit {r['code']}: {r['stderr'][-500:].strip()}")
        else:
            tg = doc.get("target") or {}
            fl = doc.get("findleaks") or {}
            live.update(stopped_s=tg.get("stopped_s"), copied_bytes=tg.get("copied_bytes"),
                        roots=fl.get("roots"), totals=fl.get("totals"), notes=fl.get("notes"),
                        lost=[dict({k: g.get(k) for k in ("kind", "layer", "bytes", "count", "python_type")},
                                   at=innermost(g), example=(g.get("examples") or [{}])[0])
                              for g in fl.get("lost", [])])
        res["findleaks_live"] = live
        log(f"[{name}] findleaks: {live['wall_s']:.2f} s wall, stopped {fmt(live.get('stopped_s'), '.3f')} s, "
            f"copied {fmt_size(live.get('copied_bytes'))}, CLI peak RSS {fmt_size(live['max_rss'])}")

        dump = os.path.join(workdir, "heap.dump")
        log(f"[{name}] heapdump {pid}")
        r = run_cli([a.leakscope, "heapdump", str(pid), "-o", dump], workdir)
        hd = {k: r[k] for k in ("wall_s", "cpu_s", "max_rss", "code")}
        if r["code"] != 0 or not os.path.exists(dump):
            res["errors"].append(f"heapdump {pid}: exit {r['code']}: {r['stderr'][-500:].strip()}")
        else:
            hd["file_bytes"] = os.path.getsize(dump)
            m = re.search(r"stopped ([\d.]+) s to copy ([^,]+), written in ([\d.]+) s", r["stdout"])
            if m:
                hd.update(stopped_s=float(m.group(1)), copied_text=m.group(2).strip(),
                          written_s=float(m.group(3)))
            else:
                res["errors"].append(f"heapdump: no 'stopped ... written in' in its output: "
                                     f"{r['stdout'].strip()[:300]}")
        res["heapdump"] = hd
        res["rss_after_heapdump"] = proc_status(pid).get("VmRSS")
        if "file_bytes" in hd:
            log(f"[{name}] heapdump: {hd['wall_s']:.2f} s wall, {fmt_size(hd['file_bytes'])}, "
                f"stopped {fmt(hd.get('stopped_s'), '.3f')} s")
            log(f"[{name}] findleaks on the dump")
            r = run_cli([a.leakscope, "findleaks", dump, "--format", "json"], workdir)
            dd = {k: r[k] for k in ("wall_s", "cpu_s", "max_rss", "code")}
            ddoc = findleaks_json(r)
            if ddoc is None:
                res["errors"].append(f"findleaks DUMP: exit {r['code']}: {r['stderr'][-500:].strip()}")
            else:
                dd["totals"] = totals_of(ddoc)
                lt = res["findleaks_live"].get("totals") or {}
                keys = ("direct_bytes", "direct_count", "indirect_bytes", "indirect_count")
                dd["same_as_live"] = all(dd["totals"].get(k) == lt.get(k) for k in keys)
            res["findleaks_dump"] = dd
            os.unlink(dump)

        # Lost memory against what the workload lost on purpose.
        tot = res["findleaks_live"].get("totals")
        if tot is not None:
            want = {k: t.ready.get(k, 0) for k in
                    ("direct_bytes", "direct_count", "indirect_bytes", "indirect_count")}
            got = {k: tot.get(k) for k in want}
            res["lost_expected"], res["lost_found"] = want, got
            res["lost_ok"] = want == got

        log(f"[{name}] stop")
        code, secs, out = t.stop(a.exit_timeout)
        res["exit_code"], res["exit_s"] = code, secs
        if code is None:
            res["errors"].append(f"did not exit within {a.exit_timeout:.0f} s of 'stop'")
        elif code != 0:
            res["errors"].append(f"leakscope run exited {code}: {t.stderr_tail()}")
        if expect and expect not in out:
            res["errors"].append(f"workload did not print {expect!r} at the end: {out[-200:]!r}")
    except RuntimeError as e:
        res["errors"].append(str(e))
    finally:
        if t is not None:
            t.kill()
        shutil.rmtree(workdir, ignore_errors=True)
    return res


# ---------------------------------------------------------------------------- output


def ok_miss(value, limit, note="") -> str:
    if value is None:
        return f"<= {limit:g} n/a"
    return f"<= {limit:g} {'ok' if value <= limit else 'MISS'}{note}"


def per_gib(secs, nbytes):
    return secs / (nbytes / GiB) if secs is not None and nbytes else None


def print_case(res: dict) -> None:
    live = res.get("findleaks_live") or {}
    hd = res.get("heapdump") or {}
    dd = res.get("findleaks_dump") or {}
    w = res.get("workload") or {}
    print()
    built = res.get("build_s")
    print(f"{res['case']}: {res['label']}  ({res['size_mib']} MiB asked; built under leakscope in "
          f"{fmt(built, '.1f', ' s')})")
    rows = []

    def row(what, value, target=""):
        rows.append((what, value, target))

    heap_b = w.get("bytes")
    row("heap: workload's own count", fmt_size(heap_b) + (f" in {w['objects']:,} objects" if "objects" in w
                                                         else f" in {w['blocks']:,} blocks" if "blocks" in w else ""))
    row("heap: target VmRSS before the scan", fmt_size(res.get("rss_before")))
    copied = live.get("copied_bytes")
    row("findleaks: copied_bytes (scanned)", fmt_size(copied))
    stopped = live.get("stopped_s")
    row("findleaks: stopped_s", fmt(stopped, ".3f", " s"))
    spg = per_gib(stopped, copied)
    row("findleaks: stopped per GiB copied", fmt(spg, ".3f", " s/GiB"),
        ok_miss(spg, STOP_S_PER_GIB_TARGET))
    row("findleaks: stopped per GiB of VmRSS", fmt(per_gib(stopped, res.get("rss_before")), ".3f", " s/GiB"))
    row("findleaks: wall (copy + analysis)", fmt(live.get("wall_s"), ".2f", " s")
        + (f"  (cpu {live['cpu_s']:.2f} s)" if "cpu_s" in live else ""))
    row("findleaks: CLI peak RSS", fmt_size(live.get("max_rss")))
    added = res.get("rss_added")
    sd = res.get("smaps_diff") or {}
    detail = (f"  (mappings: {sd['new_mappings']} new {fmt_size(sd['new_rss'])}, {sd['gone_mappings']} gone "
              f"{fmt_size(sd['gone_rss'])}, grown {fmt_size(sd['grown_rss'])}, shrunk {fmt_size(-sd['shrunk_rss'])})"
              if sd else "")
    row("target RSS added by the scan", ("+" if added and added > 0 else "") + fmt_size(added) + detail)
    row("target VmHWM added by the scan", fmt_size(res.get("hwm_added")))
    small = res["size_mib"] * MiB < HEAPDUMP_TARGET_HEAP * 0.9
    hd_note = " (target is for 1 GiB)" if small else ""
    row("heapdump: wall", fmt(hd.get("wall_s"), ".2f", " s"),
        ok_miss(hd.get("wall_s"), HEAPDUMP_TARGET_S, hd_note))
    row("heapdump: stopped_s (printed)", fmt(hd.get("stopped_s"), ".3f", " s")
        + (f"  ({per_gib(hd['stopped_s'], copied):.3f} s/GiB copied)"
           if hd.get("stopped_s") is not None and copied else ""))
    row("heapdump: written in (printed)", fmt(hd.get("written_s"), ".2f", " s"))
    row("heapdump: file size", fmt_size(hd.get("file_bytes"))
        + (f"  ({hd['file_bytes'] / copied:.1%} of copied)" if hd.get("file_bytes") and copied else ""))
    row("heapdump: CLI peak RSS", fmt_size(hd.get("max_rss")))
    row("findleaks DUMP: wall", fmt(dd.get("wall_s"), ".2f", " s")
        + ("" if "same_as_live" not in dd else
           "  (same result as live)" if dd["same_as_live"] else "  (DIFFERS from live)"))
    row("findleaks DUMP: CLI peak RSS", fmt_size(dd.get("max_rss")))
    tot = live.get("totals") or {}
    if tot:
        lost = (f"{fmt_size(tot.get('lost_bytes'))} ({tot.get('lost_bytes', 0):,} B): direct "
                f"{tot.get('direct_bytes', 0):,} B / {tot.get('direct_count', 0):,}, indirect "
                f"{tot.get('indirect_bytes', 0):,} B / {tot.get('indirect_count', 0):,}")
        exp = res.get("lost_expected") or {}
        want = (f"expect {exp.get('direct_bytes', 0):,}/{exp.get('direct_count', 0):,} + "
                f"{exp.get('indirect_bytes', 0):,}/{exp.get('indirect_count', 0):,}")
        row("lost (live findleaks)", lost, f"{want} {'ok' if res.get('lost_ok') else 'MISS'}")
        if not res.get("lost_ok"):
            for g in (live.get("lost") or [])[:4]:
                ex = g.get("example") or {}
                row(f"  lost group {g['kind']} {g['layer']}",
                    f"{g['bytes']:,} B in {g['count']:,} at {g['at']}"
                    + (f" ({g['python_type']})" if g.get("python_type") else "")
                    + (f"; e.g. {ex.get('address')}: {ex.get('preview')}" if ex else ""))
        row("reachable (live findleaks)", f"{fmt_size(tot.get('reachable_bytes'))} in "
            f"{tot.get('reachable_count', 0):,} blocks; roots {live.get('roots')}")
        if tot.get("cyclic_garbage_count"):
            row("cyclic garbage", f"{fmt_size(tot['cyclic_garbage_bytes'])} in {tot['cyclic_garbage_count']:,}")
    row("exit after stop", "-" if res.get("exit_code") is None else
        f"status {res['exit_code']} after {res['exit_s']:.1f} s", "0 " + ("ok" if res.get("exit_code") == 0 else "MISS"))
    wid = max(len(r[0]) for r in rows)
    for what, value, target in rows:
        print(f"  {what:<{wid}}  {value}" + (f"   [{target}]" if target else ""))
    for n in live.get("notes") or []:
        print(f"  note: {n}")
    for e in res["errors"]:
        print(f"  !! {e}")


# ---------------------------------------------------------------------------- main


def wait_for_leakscope(path: str, patience: float = 180) -> None:
    """build/leakscope may be being rebuilt by someone else: wait a little for it."""
    deadline = time.monotonic() + patience
    while True:
        ok = os.access(path, os.X_OK) and subprocess.run(
            [path, "--help"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
        if ok:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"{path} is missing or does not run (build it: cmake --build build -j2)")
        log(f"{path} missing or not runnable; waiting...")
        time.sleep(15)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=None, help="heap to build (default 1024; --quick 64)")
    ap.add_argument("--quick", action="store_true", help="64 MiB heaps")
    ap.add_argument("--only", default="python,native", help="python (both interpreters), native")
    ap.add_argument("--json", metavar="OUT", help="also write every figure as JSON")
    ap.add_argument("--pythons", default=f"{DEBIAN_PYTHON},{DEFAULT_PYTHON}",
                    help="comma-separated interpreters for the Python case")
    ap.add_argument("--leakscope", default=DEFAULT_LEAKSCOPE, help="leakscope binary")
    ap.add_argument("--settle", type=float, default=2.0,
                    help="least seconds between 'ready' and the first measurement (default 2; "
                         "then until the target's RSS is steady)")
    ap.add_argument("--ready-timeout", type=float, default=3600, help="seconds to build the heap")
    ap.add_argument("--exit-timeout", type=float, default=900, help="seconds to exit after 'stop'")
    a = ap.parse_args()
    a.size_mib = a.size_mib if a.size_mib is not None else (64 if a.quick else 1024)
    only = [k.strip() for k in a.only.split(",") if k.strip()]
    for k in only:
        if k not in ("python", "native"):
            ap.error(f"--only: unknown case {k!r} (python, native)")
    a.leakscope = os.path.abspath(a.leakscope)
    wait_for_leakscope(a.leakscope)
    os.makedirs(CACHE_DIR, exist_ok=True)

    cases = []  # (name, argv, label, text the workload prints at the end)
    if "python" in only:
        for py in [p.strip() for p in a.pythons.split(",") if p.strip()]:
            if not os.access(py, os.X_OK):
                ap.error(f"python not executable: {py}")
            ver = subprocess.run([py, "-c", "import sys; print(sys.version.split()[0])"],
                                 capture_output=True, text=True).stdout.strip()
            tag = "debian" if py == DEBIAN_PYTHON else "pyenv" if py == DEFAULT_PYTHON else f"py{len(cases)}"
            cases.append((f"python-{tag}", [py, os.path.join(WORKLOAD_DIR, "big_python_heap.py"),
                                            str(a.size_mib)], f"{py} ({ver}), big_python_heap.py", ""))
    if "native" in only:
        exe = build_native("big_native_heap.cpp")
        cases.append(("native", [exe, str(a.size_mib)], "big_native_heap (g++ -O2 -g)", "done "))

    rev = git_rev()
    load0 = os.getloadavg()
    started = time.time()
    results = [measure(a, *c) for c in cases]
    load1 = os.getloadavg()

    print(f"leakscope findleaks/heapdump benchmark  rev {rev}  {time.strftime('%Y-%m-%d %H:%M:%S')}  "
          f"host {platform.node()} ({os.cpu_count()} cpus)")
    print(f"heap {a.size_mib} MiB per case; load avg {load0[0]:.2f} -> {load1[0]:.2f}; "
          f"took {time.time() - started:.0f} s")
    print(f"targets: stopped <= {STOP_S_PER_GIB_TARGET:g} s per GiB of scanned (copied) memory; "
          f"heapdump of a 1 GiB heap < {HEAPDUMP_TARGET_S:g} s")
    for res in results:
        print_case(res)
    if a.json:
        doc = {"rev": rev, "time": started, "size_mib": a.size_mib, "loadavg": [load0, load1],
               "targets": {"stopped_s_per_gib": STOP_S_PER_GIB_TARGET, "heapdump_s": HEAPDUMP_TARGET_S},
               "cases": results}
        with open(a.json, "w") as f:
            json.dump(doc, f, indent=2)
        print(f"\nwrote {a.json}")
    return 1 if any(r["errors"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
