"""findleaks on Python (docs/findleaks.md): no false positives on every interpreter, a C
extension's missing Py_DECREF found under the Python function that called it (and nothing
once it is restored), live services checked while they run and left running, heap dumps
that give the same answer later, and the errors."""
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from conftest import PROGRAMS_DIR, Target, frame_str, marker_line, write_script

EXT_SRC = PROGRAMS_DIR / "refleak.c"
N_LEAKED = 300

CLEAN = '''\
import asyncio, collections, gc, sys, threading, time

KEEP = []                       # grows and stays reachable
INDEX = {}
class Record:
    __slots__ = ("key", "payload")
    def __init__(self, key, payload):
        self.key, self.payload = key, payload
class Session:
    registry = []               # a class attribute used as a registry
    def __init__(self, n):
        self.n, self.items = n, [bytearray(64) for _ in range(3)]
        Session.registry.append(self)
def make_closure(seen=[]):      # a mutable default and a closure
    data = {"k": list(range(50))}
    def inner():
        return data
    seen.append(inner)
    return inner
def gen():
    local = ["gen-%d" % i for i in range(100)]
    yield local
started = threading.Event()
def worker():
    held = [object() for _ in range(200)]  # only on this thread's frame
    started.set()
    time.sleep(3600)
t = threading.Thread(target=worker, daemon=True)
t.start()
started.wait()
g = gen(); next(g)              # a suspended generator holding its frame
q = collections.deque(maxlen=1000)
for i in range(20000):
    KEEP.append(("req-%d" % i, i, Record(i, b"x" * (i % 50))))
    INDEX[i] = KEEP[-1]
    q.append(str(i) * 3)
    if i % 100 == 0:
        Session(i); make_closure()
try:
    raise ValueError("kept")
except ValueError as e:
    KEEP.append(e)
async def main():
    tasks = [asyncio.ensure_future(asyncio.sleep(0.01)) for _ in range(50)]
    await asyncio.gather(*tasks)
asyncio.run(main())
for i in range(50):              # cycles dropped: garbage the collector frees
    a = {}; b = {"a": a}; a["b"] = b
gc.collect()
print("done", len(KEEP), len(INDEX), len(Session.registry))
'''

LEAKY = '''\
import sys
sys.path.insert(0, sys.argv[1])
import refleak

def handler(leak):
    refleak.build(%d, leak)  # CALL-BUILD

handler(sys.argv[2] == "leak")
print("built")
''' % N_LEAKED

SERVICE = '''\
import os, sys, time
sys.path.insert(0, sys.argv[1])
import refleak

def serve(leak):
    refleak.build(100, leak)  # CALL-SERVE

print("ready", flush=True)
while not os.path.exists("stop"):
    serve(True)
    time.sleep(0.02)
print("stopped")
'''


def build_refleak(python, outdir: Path) -> Path:
    include = Path(python.include_dir)
    if not (include / "Python.h").is_file():
        pytest.skip(f"no Python.h for {python.name} in {include}")
    outdir.mkdir(exist_ok=True)
    so = outdir / ("refleak" + python.ext_suffix)
    r = subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-g", f"-I{include}", str(EXT_SRC), "-o", str(so)],
                       capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr.decode()
    return outdir


def findleaks_of(ls, capture="capture.lsc"):
    doc = ls.report(capture)
    fl = doc.get("findleaks")
    assert fl, f"the report has no findleaks section: {sorted(doc)} warnings {doc['warnings']}"
    return fl


def fmt_lost(fl, n=6):
    rows = [f"  {g['kind']:8} {g['layer']:7} {g['bytes']:>9} B {g['count']:>6} x {g.get('python_type')!s:10} "
            + ", ".join(frame_str(f) for f in g["frames"][:6]) for g in fl["lost"][:n]]
    return f"totals {fl['totals']}\nnotes {fl['notes']}\n" + "\n".join(rows)


def run_findleaks(ls, argv, expect_status):
    r = ls.cli("run", "--findleaks", "-q", "-o", "capture.lsc", "--", *argv)
    assert r.returncode == expect_status, r.describe()
    return r


def test_no_false_positives(ls, python):
    """A program that leaks nothing and keeps growing data reachable reports 0 lost bytes."""
    script = write_script(ls.workdir, "clean.py", CLEAN)
    r = run_findleaks(ls, [python.path, script.name], 0)
    assert r.out.startswith("done 20001 20000 200"), r.describe()
    fl = findleaks_of(ls)
    assert fl["when"] == "exit" and fl["roots"] == "precise", fl
    assert fl["totals"]["lost_bytes"] == 0 and fl["lost"] == [], fmt_lost(fl)
    assert fl["totals"]["reachable_count"] > 60000, fl["totals"]
    assert "findleaks: nothing lost" in r.err, r.describe()


def test_missing_decref_found_under_the_calling_function(ls, python):
    ext = build_refleak(python, ls.workdir / "ext")
    script = write_script(ls.workdir, "leaky.py", LEAKY)
    r = run_findleaks(ls, [python.path, script.name, str(ext), "leak"], 23)
    assert r.out == "built\n", r.describe()
    fl = findleaks_of(ls)
    line = marker_line(script, "CALL-BUILD")
    sets = [g for g in fl["lost"] if g["kind"] == "direct" and g["python_type"] == "set"]
    assert sets, fmt_lost(fl)
    g = sets[0]
    # A conservative scan reads stale words too (an interpreter frame's dead slots, the C stack
    # above the stack pointer): the last few objects made may still look referenced.
    assert N_LEAKED - 20 <= g["count"] <= N_LEAKED and g["unowned_refs"] == g["count"], fmt_lost(fl)
    assert any(f["file"] and Path(f["file"]).name == script.name and f["line"] == line and f["function"] == "handler"
               for f in g["frames"]), fmt_lost(fl)
    assert g["examples"] and "set object, refcount 1" in g["examples"][0]["preview"], g["examples"]
    # What the sets own is lost with them: the ints and strings in them.
    indirect = {x["python_type"] for x in fl["lost"] if x["kind"] == "indirect"}
    assert {"str", "int"} <= indirect, fmt_lost(fl)
    assert fl["totals"]["direct_count"] == g["count"], fmt_lost(fl)


@pytest.mark.pythons("py3.12", "debian3.11")
def test_missing_decref_with_native_names_the_c_function(ls, python):
    """With --native the lost objects' stacks carry the extension's C function under the line."""
    ext = build_refleak(python, ls.workdir / "ext")
    script = write_script(ls.workdir, "leaky.py", LEAKY)
    r = ls.cli("run", "--findleaks", "--native", "-q", "-o", "capture.lsc", "--", python.path, script.name, str(ext),
               "leak")
    assert r.returncode == 23, r.describe()
    fl = findleaks_of(ls)
    sets = [g for g in fl["lost"] if g["kind"] == "direct" and g["python_type"] == "set"]
    assert sets, fmt_lost(fl)
    frames = sets[0]["frames"]
    native = [i for i, f in enumerate(frames) if f["native"] and (f["function"] or "").startswith("build")]
    line = marker_line(script, "CALL-BUILD")
    python_after = [i for i, f in enumerate(frames) if not f["native"] and f["line"] == line]
    assert native and python_after and native[0] < python_after[0], [frame_str(f) for f in frames]


@pytest.mark.pythons("py3.9", "py3.11", "py3.13", "debian3.11")
def test_decref_restored_reports_nothing(ls, python):
    ext = build_refleak(python, ls.workdir / "ext")
    script = write_script(ls.workdir, "leaky.py", LEAKY)
    run_findleaks(ls, [python.path, script.name, str(ext), "fixed"], 0)
    fl = findleaks_of(ls)
    assert fl["totals"]["lost_bytes"] == 0, fmt_lost(fl)


def lost_sets(doc, script_name, line):
    fl = doc["findleaks"]
    return [g for g in fl["lost"] if g["python_type"] == "set" and any(
        f["file"] and Path(f["file"]).name == script_name and f["line"] == line for f in g["frames"])]


@pytest.mark.pythons("py3.12", "debian3.11")
def test_live_service_checked_while_it_runs(ls, python, targets):
    ext = build_refleak(python, ls.workdir / "ext")
    script = write_script(ls.workdir, "service.py", SERVICE)
    t = Target([ls.exe, "run", "-q", "-o", "capture.lsc", "--", python.path, script.name, str(ext)], ls.workdir)
    targets.append(t)
    pid = int(subprocess.check_output(["pgrep", "-f", "-n", f"^{python.path} {script.name}"]).decode())
    time.sleep(0.5)
    counts = []
    for _ in range(2):
        r = ls.cli("findleaks", pid, "--format", "json")
        assert r.returncode == 0, r.describe()
        doc = json.loads(r.out)
        assert doc["schema"] == "leakscope.findleaks/1" and doc["target"]["pid"] == pid, doc["target"]
        hits = lost_sets(doc, script.name, marker_line(script, "CALL-SERVE"))
        assert hits and hits[0]["kind"] == "direct", fmt_lost(doc["findleaks"])
        counts.append(hits[0]["count"])
        assert doc["target"]["stopped_s"] < 1.0, doc["target"]
        time.sleep(0.3)
    assert counts[1] > counts[0] >= 100, counts
    code, out, err = t.finish()
    assert code == 0 and out == "ready\nstopped\n", (code, out, err)


@pytest.mark.pythons("py3.11")
def test_heapdump_gives_the_same_answer_later(ls, python, targets):
    ext = build_refleak(python, ls.workdir / "ext")
    script = write_script(ls.workdir, "service.py", SERVICE.replace("serve(True)\n    time.sleep(0.02)",
                                                                     "time.sleep(0.02)").replace(
        'print("ready", flush=True)', 'serve(True)\nprint("ready", flush=True)'))
    t = Target([ls.exe, "run", "-q", "-o", "capture.lsc", "--", python.path, script.name, str(ext)], ls.workdir)
    targets.append(t)
    pid = int(subprocess.check_output(["pgrep", "-f", "-n", f"^{python.path} {script.name}"]).decode())
    live = ls.cli("findleaks", pid, "--format", "json")
    assert live.returncode == 0, live.describe()
    r = ls.cli("heapdump", pid, "-o", "heap.dump")
    assert r.returncode == 0, r.describe()
    dump = ls.workdir / "heap.dump"
    assert (dump.stat().st_mode & 0o777) == 0o600
    code, out, _ = t.finish()
    assert code == 0 and out == "ready\nstopped\n"
    later = ls.cli("findleaks", dump, "--format", "json")
    assert later.returncode == 0, later.describe()
    a, b = json.loads(live.out)["findleaks"], json.loads(later.out)["findleaks"]
    assert b["when"] == "dump"
    for k in ("lost_bytes", "lost_count", "direct_count", "indirect_count"):
        assert a["totals"][k] == b["totals"][k], (k, a["totals"], b["totals"])
    assert [(g["kind"], g["python_type"], g["count"]) for g in a["lost"]] == \
           [(g["kind"], g["python_type"], g["count"]) for g in b["lost"]]
    again = ls.cli("heapdump", pid, "-o", "heap.dump")  # exists: refused, and it is not a pid any more anyway
    assert again.returncode != 0 and len(again.err.splitlines()) == 1, again.describe()


@pytest.mark.pythons("py3.11")
def test_findleaks_refusals(ls, python, targets):
    script = write_script(ls.workdir, "idle.py", 'import os, time\nprint("ready", flush=True)\n'
                                                 'while not os.path.exists("stop"): time.sleep(0.05)\n')
    plain = Target([python.path, script.name], ls.workdir)
    targets.append(plain)
    for args, code, words in (((plain.pid,), 1, "not tracked"), (("0",), 2, "not a process id"),
                              (("4000000",), 2, "no process"), (("no-such.dump",), 2, "no such heap dump")):
        r = ls.cli("findleaks", *args)
        assert r.returncode == code and len(r.err.splitlines()) == 1 and words in r.err, r.describe()
    plain.finish()
    (ls.workdir / "stop").unlink()
    sampled = Target([ls.exe, "run", "-q", "--sample-rate", "65536", "-o", "s.lsc", "--", python.path, script.name],
                     ls.workdir)
    targets.append(sampled)
    pid = int(subprocess.check_output(["pgrep", "-f", "-n", f"^{python.path} {script.name}"]).decode())
    r = ls.cli("findleaks", pid)
    assert r.returncode == 1 and "samples allocations" in r.err and len(r.err.splitlines()) == 1, r.describe()
    code, out, _ = sampled.finish()
    assert code == 0 and out == "ready\n"


FORKING = '''\
import os, sys, time
KEEP = []
print("ready", flush=True)
children = 0
while not os.path.exists("stop"):
    KEEP.append(["item-%d" % len(KEEP)] * 4)
    pid = os.fork()
    if pid == 0:
        junk = [bytearray(1000) for _ in range(50)]
        os._exit(7)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 7
    children += 1
    time.sleep(0.005)
print("stopped", children > 0)
'''


@pytest.mark.pythons("py3.12", "py3.13", "debian3.11")
def test_a_forking_service_is_checked_and_runs_on(ls, python, targets):
    """Children forked while the check stops and copies the parent are not touched; the
    parent's reachable data is reachable."""
    script = write_script(ls.workdir, "forking.py", FORKING)
    t = Target([ls.exe, "run", "-q", "-o", "capture.lsc", "--", python.path, script.name], ls.workdir)
    targets.append(t)
    pid = int(subprocess.check_output(["pgrep", "-f", "-o", f"^{python.path} {script.name}"]).decode())
    time.sleep(0.3)
    for _ in range(3):
        r = ls.cli("findleaks", pid, "--format", "json")
        assert r.returncode == 0, r.describe()
        fl = json.loads(r.out)["findleaks"]
        assert fl["totals"]["lost_bytes"] == 0, fmt_lost(fl)
        time.sleep(0.1)
    code, out, err = t.finish()
    assert code == 0 and out == "ready\nstopped True\n" and err == "", (code, out, err)
