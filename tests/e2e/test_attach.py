"""`leakscope attach` / `detach`: real long-running programs, attached while they run, made to
leak, snapshotted and detached; the report must name the leaking line and the program must run
on unharmed (same output, exit status 0). docs/attach.md has the design."""
import ctypes
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import INTERPRETERS, PROGRAMS_DIR, Target, e2e_program, fmt_stacks, marker_line

TARGET = PROGRAMS_DIR / "attach_target.py"
LEAK_SECONDS = 3.5


def attach_leak_detach(ls, target, marker, src=TARGET, extra=(), during=None):
    """attach, leak for LEAK_SECONDS, snapshot, detach; returns the report."""
    r = ls.cli("attach", target.pid, "-o", "capture.lsc", "--interval", "0.2", "-q", *extra)
    assert r.returncode == 0, r.describe()
    target.touch("leak.on")
    if during:
        during()
    time.sleep(LEAK_SECONDS)
    s = ls.cli("snapshot", target.pid)
    assert s.returncode == 0 and "snapshot of process" in s.out, s.describe()
    d = ls.cli("detach", target.pid)
    assert d.returncode == 0 and "detached from process" in d.out, d.describe()
    os.remove(target.cwd / "leak.on")
    doc = ls.report()
    assert doc["capture"]["attached"] is True, doc["capture"]
    assert any("attached to a running process" in w for w in doc["warnings"]), doc["warnings"]
    assert doc["capture"]["complete"] is True, doc["warnings"]
    line = marker_line(src, marker)
    top = doc["stacks"][0]
    hits = [f for f in top["frames"] if (f["file"] or "").endswith(Path(src).name) and f["line"] == line]
    assert hits, f"top stack is not the {marker} line {line}\n" + fmt_stacks(doc)
    return doc


def finish_ok(target):
    rc, out, err = target.finish()
    assert rc == 0, f"exit {rc}; stderr: {err[-2000:]}"
    assert out == "ready\ndone\n", out
    assert "leakscope" not in err, err


@pytest.mark.parametrize("interp", [p for _, _, p in INTERPRETERS], ids=[i for i, _, _ in INTERPRETERS])
def test_attach_python_loop(ls, targets, interp):
    t = Target([interp, TARGET, "loop"], ls.workdir)
    targets.append(t)
    doc = attach_leak_detach(ls, t, "LEAK-LOOP")
    assert doc["verdict"] == "leak", doc["findings"]
    assert doc["leaks"][0]["frames"][0]["line"] == marker_line(TARGET, "LEAK-LOOP"), fmt_stacks(doc)
    finish_ok(t)


@pytest.mark.parametrize("mode,marker", [
    ("sleep", "LEAK-WORKER"),
    ("accept", "LEAK-WORKER"),
    ("lock", "LEAK-WORKER"),
    ("spin", "LEAK-SPIN"),
    ("threads", "LEAK-THREADS"),
])
def test_attach_python_modes(ls, targets, mode, marker):
    """The main thread blocked in a system call or holding the GIL in pure Python."""
    interp = INTERPRETERS[3][2]  # 3.12
    t = Target([interp, TARGET, mode], ls.workdir)
    targets.append(t)
    attach_leak_detach(ls, t, marker)
    finish_ok(t)


def test_attach_asyncio_server(ls, targets):
    interp = INTERPRETERS[2][2]  # 3.11
    t = Target([interp, TARGET, "asyncio"], ls.workdir)
    targets.append(t)
    deadline = time.time() + 10
    while not (ls.workdir / "port").exists() and time.time() < deadline:
        time.sleep(0.05)
    port = int((ls.workdir / "port").read_text())

    def requests():
        for i in range(400):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
                c.sendall(b"x" * 50 + b"\n")
                assert c.recv(16) == b"ok\n"
    attach_leak_detach(ls, t, "LEAK-ASYNC", during=requests)
    finish_ok(t)


def test_attach_native_program(ls, targets, build_dir):
    exe = e2e_program(build_dir, "attach_native")
    t = Target([exe], ls.workdir)
    targets.append(t)
    doc = attach_leak_detach(ls, t, "ATTACH-LEAK", src=PROGRAMS_DIR / "attach_native.cpp")
    top = doc["stacks"][0]
    assert top["layer"] == "malloc" and any("make_record" in (f["function"] or "") for f in top["frames"]), fmt_stacks(doc)
    finish_ok(t)


def test_attach_detach_cycles_leave_service_running(ls, targets):
    """Several attach/detach cycles on a busy multithreaded service: no crash, no deadlock, same
    output, and each cycle writes its own complete capture (bench/attach_cycles.py runs 50)."""
    interp = INTERPRETERS[4][2]  # 3.13
    t = Target([interp, TARGET, "threads"], ls.workdir)
    targets.append(t)
    for i in range(5):
        r = ls.cli("attach", t.pid, "-o", f"c{i}.lsc", "--interval", "0.2", "-q")
        assert r.returncode == 0, r.describe()
        time.sleep(0.3)
        d = ls.cli("detach", t.pid, "-q")
        assert d.returncode == 0, d.describe()
        doc = ls.report(f"c{i}.lsc")
        assert doc["capture"]["complete"] is True and doc["capture"]["events"] > 0, doc["capture"]
    finish_ok(t)


def test_attach_duration_detaches_by_itself(ls, targets):
    interp = INTERPRETERS[2][2]
    t = Target([interp, TARGET, "loop"], ls.workdir)
    targets.append(t)
    t.touch("leak.on")
    r = ls.cli("attach", t.pid, "-o", "capture.lsc", "--interval", "0.2", "--duration", "2")
    assert r.returncode == 0 and "detached from process" in r.out, r.describe()
    doc = ls.report()
    assert doc["capture"]["complete"] is True and 1.5 < doc["capture"]["duration_s"] < 6, doc["capture"]
    assert doc["stacks"][0]["frames"][0]["line"] == marker_line(TARGET, "LEAK-LOOP"), fmt_stacks(doc)
    s = ls.cli("snapshot", t.pid)
    assert s.returncode == 1 and "not tracked" in s.err, s.describe()
    finish_ok(t)


# ---------------------------------------------------------------------------------- errors

def test_attach_no_such_process(ls):
    r = ls.cli("attach", "4194000")
    assert r.returncode == 2 and r.err.strip() == "leakscope: no process 4194000", r.describe()
    r = ls.cli("attach", "12abc")
    assert r.returncode == 2 and "not a process id" in r.err, r.describe()
    r = ls.cli("detach", "4194000")
    assert r.returncode == 2 and "no process" in r.err, r.describe()


def test_attach_twice_and_detach_unattached(ls, targets):
    t = Target([INTERPRETERS[2][2], TARGET, "loop"], ls.workdir)
    targets.append(t)
    d = ls.cli("detach", t.pid)
    assert d.returncode == 1 and "is not attached" in d.err, d.describe()
    r = ls.cli("attach", t.pid, "-o", "a.lsc", "-q")
    assert r.returncode == 0, r.describe()
    r2 = ls.cli("attach", t.pid, "-o", "b.lsc", "-q")
    assert r2.returncode == 1 and "already attached" in r2.err and "leakscope detach" in r2.err, r2.describe()
    assert not (ls.workdir / "b.lsc").exists()
    assert ls.cli("detach", t.pid, "-q").returncode == 0
    finish_ok(t)


def test_attach_to_process_started_by_run(ls, targets, build_dir):
    t = Target([build_dir / "leakscope", "run", "-q", "-o", "run.lsc", "--", INTERPRETERS[2][2], TARGET, "loop"],
               ls.workdir)
    targets.append(t)
    # The Python process is the child of `leakscope run`.
    deadline = time.time() + 10
    child = None
    while child is None and time.time() < deadline:
        kids = Path(f"/proc/{t.pid}/task/{t.pid}/children").read_text().split()
        child = int(kids[0]) if kids else None
    assert child, "no child of leakscope run"
    r = ls.cli("attach", child, "-o", "a.lsc")
    assert r.returncode == 1 and "started by leakscope run" in r.err, r.describe()
    d = ls.cli("detach", child)
    assert d.returncode == 1 and "leakscope run" in d.err, d.describe()
    rc, out, err = t.finish()
    assert rc == 0 and out == "ready\ndone\n", err


def test_attach_unsupported_python(ls, targets):
    old = Path("/root/.pyenv/versions/3.8.18/bin/python3.8")
    if not old.exists():
        pytest.skip("no Python 3.8 here")
    t = Target([old, TARGET, "loop"], ls.workdir)
    targets.append(t)
    r = ls.cli("attach", t.pid, "-o", "a.lsc")
    assert r.returncode == 1 and "Python 3.8" in r.err and "not supported" in r.err, r.describe()
    assert not (ls.workdir / "a.lsc").exists()
    finish_ok(t)


def test_attach_exited_process(ls):
    """A process that has exited (a zombie nobody reaped yet)."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.time() + 10
    while time.time() < deadline and "Z" not in Path(f"/proc/{p.pid}/stat").read_text().split(")")[1][:3]:
        time.sleep(0.02)
    r = ls.cli("attach", p.pid, "-o", "a.lsc")
    p.wait()
    assert r.returncode == 1 and "exited" in r.err, r.describe()


def test_attach_refused_when_already_traced(ls, targets):
    """ptrace refused: another tracer holds the process. The message names it and the fix."""
    t = Target([INTERPRETERS[2][2], TARGET, "loop"], ls.workdir)
    targets.append(t)
    tracer = subprocess.Popen([sys.executable, "-c", (
        "import ctypes, sys, time\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "PTRACE_SEIZE = 0x4206\n"
        f"rc = libc.ptrace(PTRACE_SEIZE, {t.pid}, None, None)\n"
        "print('seized' if rc == 0 else 'failed %d' % ctypes.get_errno(), flush=True)\n"
        "time.sleep(30)\n")], stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert tracer.stdout.readline().strip() == b"seized"
        r = ls.cli("attach", t.pid, "-o", "a.lsc")
        assert r.returncode == 1, r.describe()
        assert f"already being traced by process {tracer.pid}" in r.err and "stop that tracer" in r.err, r.describe()
    finally:
        tracer.kill()
        tracer.wait()
    finish_ok(t)


def test_attach_other_users_process_refused(ls, targets, build_dir, tmp_path):
    """An unprivileged user may not ptrace root's process: one line naming the cause and fix."""
    import shutil
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("needs root and setpriv to run leakscope as another user")
    t = Target([INTERPRETERS[2][2], TARGET, "loop"], ls.workdir)
    targets.append(t)
    out = tmp_path / "nobody"
    out.mkdir()
    out.chmod(0o777)
    r = ls.cli("attach", t.pid, "-o", str(out / "a.lsc"),
               prefix=[setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--"])
    assert r.returncode == 1, r.describe()
    assert "belongs to another user (uid 0)" in r.err and "as that user or as root" in r.err, r.describe()
    assert len(r.err.strip().splitlines()) == 1, r.describe()
    assert not (out / "a.lsc").exists()
    finish_ok(t)


@pytest.mark.pythons("py3.11")
def test_attach_patches_modules_loaded_later(ls, targets, python):
    """A C extension imported after the attach: its malloc calls are seen (its GOT is patched
    when it is loaded) and charged to the Python line that called it."""
    from test_extension import build_extension
    build_extension(python, ls.workdir / "ext")
    t = Target([python.path, TARGET, "ext"], ls.workdir)
    targets.append(t)
    r = ls.cli("attach", t.pid, "-o", "capture.lsc", "--interval", "0.2", "-q")
    assert r.returncode == 0, r.describe()
    t.touch("leak.on")
    time.sleep(1.5)
    assert ls.cli("detach", t.pid, "-q").returncode == 0
    doc = ls.report()
    line = marker_line(TARGET, "LEAK-EXT")
    hits = [s for s in doc["stacks"] if s["layer"] == "malloc" and s["count"] == 2000 and s["bytes"] == 2000 * 333]
    assert hits, fmt_stacks(doc)
    assert any(f["line"] == line and (f["file"] or "").endswith("attach_target.py") for f in hits[0]["frames"]), \
        fmt_stacks(doc)
    finish_ok(t)


def test_attach_stopped_process_refused(ls, targets):
    """A process stopped with SIGSTOP (Ctrl-Z) is not touched: resuming it under ptrace would
    break its stop. The message says how to let it run."""
    t = Target([INTERPRETERS[2][2], TARGET, "loop"], ls.workdir)
    targets.append(t)
    os.kill(t.pid, signal.SIGSTOP)
    deadline = time.time() + 5
    while time.time() < deadline and "T" not in Path(f"/proc/{t.pid}/stat").read_text().split(")")[1][:3]:
        time.sleep(0.02)
    r = ls.cli("attach", t.pid, "-o", "a.lsc")
    os.kill(t.pid, signal.SIGCONT)
    assert r.returncode == 1 and "is stopped" in r.err and f"kill -CONT {t.pid}" in r.err, r.describe()
    assert not (ls.workdir / "a.lsc").exists()
    finish_ok(t)


JEMALLOC = Path("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2")


def test_program_with_its_own_malloc_is_not_broken(ls, targets):
    """jemalloc preloaded: glibc's free must never see its blocks. leakscope leaves the malloc
    family alone there (and says so), under run and under attach, and still tracks Python objects."""
    if not JEMALLOC.exists():
        pytest.skip("libjemalloc2 is not installed")
    interp = INTERPRETERS[2][2]
    script = ls.workdir / "je.py"
    script.write_text("import ctypes\n"
                      "keep = [bytearray(500) for _ in range(3000)]  # JE-KEEP\n"
                      "libc = ctypes.CDLL(None)\n"
                      "libc.malloc.restype = ctypes.c_void_p\n"
                      "ptrs = [libc.malloc(300) for _ in range(500)]\n"
                      "print('ok', len(keep))\n")
    r = ls.run([interp, script.name], env=dict(os.environ, LD_PRELOAD=str(JEMALLOC)), output="run.lsc")
    assert r.returncode == 0 and r.out == "ok 3000\n", r.describe()
    doc = ls.report("run.lsc")
    assert any("not the C library's" in w for w in doc["warnings"]), doc["warnings"]
    assert any(s["layer"] == "python" and s["count"] >= 3000 and s["frames"][0]["line"] == 2 for s in doc["stacks"]), \
        fmt_stacks(doc)
    t = Target(["env", f"LD_PRELOAD={JEMALLOC}", interp, TARGET, "loop"], ls.workdir)
    targets.append(t)
    doc = attach_leak_detach(ls, t, "LEAK-LOOP")
    assert any("not the C library's" in w for w in doc["warnings"]), doc["warnings"]
    finish_ok(t)


def test_attach_judges_the_call_chain_not_stray_words(ls, targets, build_dir):
    """A parked frame holding pointers to malloc and free (an allocator table on the stack) is
    not inside the allocator: the thread is borrowed. A word scan of the stack refused it, as
    it refused a Python thread over a stale ld.so return address for a whole second in CI."""
    t = Target([e2e_program(build_dir, "attach_parked"), "pointers"], ls.workdir)
    targets.append(t)
    r = ls.cli("attach", t.pid, "-o", "capture.lsc", "-q")
    assert r.returncode == 0, r.describe()
    d = ls.cli("detach", t.pid, "-q")
    assert d.returncode == 0, d.describe()
    finish_ok(t)


def test_attach_never_borrows_a_thread_inside_the_loader(ls, targets, build_dir):
    """The only thread is parked in a dl_iterate_phdr callback (the loader's lock held): attach
    gives up after about a second with one line, and the program runs on unharmed."""
    t = Target([e2e_program(build_dir, "attach_parked"), "iterate"], ls.workdir)
    targets.append(t)
    r = ls.cli("attach", t.pid, "-o", "capture.lsc", "-q")
    assert r.returncode == 1, r.describe()
    assert "inside the allocator or the dynamic loader" in r.err and r.err.count("\n") == 1, r.describe()
    finish_ok(t)
