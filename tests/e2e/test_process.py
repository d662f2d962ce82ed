"""Process life cycle: fork, child programs, SIGKILL."""
import os
import re
import signal

import pytest

from conftest import fmt_stacks, innermost, is_line, marker_line, stacks_with_line, write_script

FORK_SCRIPT = '''\
import os
import sys

N = int(sys.argv[1])
kept = []

pid = os.fork()
if pid == 0:
    junk = [bytearray(1000) for _ in range(5000)]  # CHILD-ALLOC
    os._exit(0)

for i in range(N):
    kept.append(bytearray(100))  # PARENT-LEAK
_, status = os.waitpid(pid, 0)
print("child exit", os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else status >> 8)
sys.exit(4)
'''


def check_fork_capture(ls, python, script, n, child_marker="CHILD-ALLOC"):
    doc = ls.report()
    assert doc["capture"]["complete"] is True, doc["warnings"]
    assert doc["capture"]["argv"][:2] == [python.path, script.name]
    leak_line = marker_line(script, "PARENT-LEAK")
    top_py = max((s for s in doc["stacks"] if s["layer"] == "python"), key=lambda s: s["bytes"])
    assert is_line(innermost(top_py), script.name, leak_line), fmt_stacks(doc)
    assert top_py["count"] >= n, fmt_stacks(doc)
    assert not stacks_with_line(doc, script.name, marker_line(script, child_marker)), \
        "the forked child's allocations were recorded\n" + fmt_stacks(doc)


def test_fork(ls, python):
    n = 30_000
    script = write_script(ls.workdir, "forker.py", FORK_SCRIPT)
    r = ls.run([python.path, script.name, str(n)], timeout=60)
    assert r.returncode == 4, r.describe()
    assert r.out.strip() == "child exit 0"
    check_fork_capture(ls, python, script, n)


def test_fork_output_unchanged(ls, python):
    """The program does not see leakscope: fork in a single-threaded program prints nothing."""
    script = write_script(ls.workdir, "forker.py", FORK_SCRIPT)
    cmd = [python.path, script.name, "1000"]
    plain = ls.plain(cmd, timeout=60)
    r = ls.run(cmd, timeout=60)
    assert (r.returncode, r.stdout) == (plain.returncode, plain.stdout) == (4, b"child exit 0\n")
    assert r.stderr == plain.stderr, r.describe()


FORK_STRESS_SCRIPT = '''\
import ctypes
import os
import sys
import threading
import warnings

warnings.simplefilter("ignore", DeprecationWarning)  # "multi-threaded fork" on 3.12+
N, FORKS = int(sys.argv[1]), int(sys.argv[2])
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
stop = threading.Event()


def churn():
    # ctypes drops the GIL around the call: libc malloc/free race with fork() in the main thread
    while not stop.is_set():
        for _ in range(200):
            libc.free(libc.malloc(64))


threads = [threading.Thread(target=churn) for _ in range(2)]
for t in threads:
    t.start()
children = []
for k in range(FORKS):
    pid = os.fork()
    if pid == 0:
        junk = [bytearray(500) for _ in range(2000)]  # CHILD-ALLOC
        p = libc.malloc(1000)
        libc.free(p)
        os._exit(0)
    children.append(pid)
kept = []
for i in range(N):
    kept.append(bytearray(100))  # PARENT-LEAK
bad = [p for p in children if os.waitpid(p, 0)[1] != 0]
stop.set()
for t in threads:
    t.join()
print("children", len(children), "bad", len(bad))
sys.exit(4)
'''


@pytest.mark.pythons("py3.9", "py3.12", "debian3.11")
def test_fork_while_other_threads_allocate(ls, python):
    """Locks held by other threads at fork() must not deadlock the child; the parent goes on."""
    n, forks = 20_000, 25
    script = write_script(ls.workdir, "fork_stress.py", FORK_STRESS_SCRIPT)
    r = ls.run([python.path, script.name, str(n), str(forks)], timeout=90)
    assert r.returncode == 4, r.describe()
    assert r.out.strip() == f"children {forks} bad 0"
    check_fork_capture(ls, python, script, n)


SUBPROCESS_SCRIPT = '''\
import subprocess

kept = [("item", i) for i in range(50_000)]  # PARENT-LEAK
subprocess.run(["/bin/true"], check=True)
print("ran child")
'''


def test_subprocess_child_keeps_parent_capture(ls, python):
    script = write_script(ls.workdir, "spawner.py", SUBPROCESS_SCRIPT)
    r = ls.run([python.path, script.name], timeout=60)
    assert r.returncode == 0 and r.out == "ran child\n", r.describe()
    doc = ls.report()
    assert doc["capture"]["argv"] == [python.path, script.name], doc["capture"]
    assert doc["capture"]["python_version"] == python.version
    hits = stacks_with_line(doc, script.name, marker_line(script, "PARENT-LEAK"), innermost_only=True)
    assert hits and hits[0]["count"] >= 50_000, fmt_stacks(doc)


KILL_SCRIPT = '''\
import os
import signal
import sys
import time

kept = []


def leak_for(seconds):
    t0 = time.monotonic()
    n = 0
    next_report = 0.0
    while True:
        now = time.monotonic() - t0
        if now >= next_report:
            print("progress %.4f %d" % (now, n), flush=True)
            next_report += 0.05
        if now >= seconds:
            return
        for _ in range(100):
            kept.append(bytes(100))  # KILL-LEAK
        n += 100
        time.sleep(0.001)


leak_for(float(sys.argv[1]))
os.kill(os.getpid(), signal.SIGKILL)
print("not reached")
'''


@pytest.mark.pythons("py3.10", "py3.12", "debian3.11")
def test_sigkill_keeps_flushed_data(ls, python):
    script = write_script(ls.workdir, "killed.py", KILL_SCRIPT)
    r = ls.run([python.path, script.name, "1.5"], timeout=60)
    assert r.returncode in (-signal.SIGKILL, 128 + signal.SIGKILL), r.describe()
    assert "not reached" not in r.out
    progress = [(float(t), int(n)) for t, n in re.findall(r"^progress (\S+) (\d+)$", r.out, re.M)]
    assert progress and progress[-1][0] >= 1.5, r.out[-500:]

    doc = ls.report()
    assert doc["capture"]["complete"] is False
    assert doc["warnings"], "a capture without a clean stop must carry a warning"
    assert doc["capture"]["argv"] == [python.path, script.name, "1.5"]
    hits = stacks_with_line(doc, script.name, marker_line(script, "KILL-LEAK"), innermost_only=True)
    assert hits, "the leak line is missing from a killed capture\n" + fmt_stacks(doc)
    # Chunks are flushed at least once a second: everything allocated more than ~1 s before the
    # kill (plus 0.3 s of scheduling slack) is in the capture.
    t_end = progress[-1][0]
    must_have = max(n for t, n in progress if t <= t_end - 1.3) if progress[0][0] <= t_end - 1.3 else 0
    assert must_have > 0
    assert hits[0]["count"] >= must_have, (hits[0]["count"], must_have, progress[-5:])
    assert hits[0]["bytes"] >= must_have * 100


def test_bash_children_see_no_leakscope_variables(ls):
    """bash has its own getenv/unsetenv, which ignore `environ` until bash's main runs: the
    agent must scrub `environ` itself, or bash exports LD_PRELOAD and LEAKSCOPE_* to every
    command it starts, and each of those writes its own header into the capture."""
    bash = "/usr/bin/bash"
    script = ('for i in $(seq 1 3); do x=$i; done; e=$(env); '
              'case "$e" in *LEAKSCOPE_OUTPUT=*|*LEAKSCOPE_PID=*|*LD_PRELOAD=*) echo LEAKED;; *) echo CLEAN;; esac; '
              'echo "mine=$LEAKSCOPE_MINE"; true')
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    env["LEAKSCOPE_MINE"] = "kept"  # the user's own variable with our prefix is not ours to remove
    plain = ls.plain([bash, "-c", script], env=env)
    assert plain.out.split() == ["CLEAN", "mine=kept"], plain.describe()
    r = ls.run([bash, "-c", script], env=env)
    assert r.returncode == 0, r.describe()
    assert r.stdout == plain.stdout, r.describe()
    doc = ls.report()
    assert doc["capture"]["complete"] is True, doc["warnings"]
    assert doc["capture"]["argv"][:2] == [bash, "-c"], doc["capture"]
