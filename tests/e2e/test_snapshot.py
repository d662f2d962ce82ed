"""`leakscope snapshot PID`: a snapshot on demand from a process started with `leakscope run`."""
import os
import subprocess
import sys
import time

import pytest

from conftest import assert_one_line_error, write_script

SERVICE = '''
import time
kept = []
start = time.monotonic()
while time.monotonic() - start < 60:
    for i in range(2000):
        kept.append("item-%d" % i)  # SVC-LEAK
    time.sleep(0.05)
'''


def child_of(pid: int, timeout: float = 10.0) -> int:
    """The target process `leakscope run` (pid) started."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                kids = f.read().split()
            if kids:
                return int(kids[0])
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError("leakscope run started no child")


def test_snapshot_of_running_process(ls, build_dir, python_any):
    script = write_script(ls.workdir, "svc.py", SERVICE)
    leakscope = str(build_dir / "leakscope")
    # --interval 60: without the requested snapshot the capture would hold no point yet
    proc = subprocess.Popen([leakscope, "run", "-q", "--interval", "60", "-o", "svc.lsc", "--", python_any, script.name],
                            cwd=ls.workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        target = child_of(proc.pid)
        time.sleep(2.0)
        r = subprocess.run([leakscope, "snapshot", str(target)], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        assert "svc.lsc" in r.stdout
        doc = ls.report("svc.lsc")
        assert proc.poll() is None, "the program must still be running"
        top = doc["stacks"][0]
        line = next(i for i, l in enumerate(script.read_text().splitlines(), 1) if "SVC-LEAK" in l)
        assert top["frames"][0]["line"] == line and top["frames"][0]["file"].endswith("svc.py"), doc["stacks"][:2]
        assert top["count"] >= 20000, top
        assert doc["timeline"]["t_s"] and doc["timeline"]["t_s"][-1] >= 1.5
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_snapshot_errors(ls):
    r = ls.cli("snapshot", str(os.getpid()), timeout=30)  # pytest itself: not tracked
    assert_one_line_error(r, 1)
    r = ls.cli("snapshot", "4000000", timeout=30)
    assert_one_line_error(r, 2)
    r = ls.cli("snapshot", "not-a-pid", timeout=30)
    assert_one_line_error(r, 2)


def control(pid: int, request: bytes, timeout: float = 30.0) -> str:
    """One request on the agent's control socket (agent/control.cpp), as the CLI sends it."""
    import socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(b"\0leakscope/" + str(pid).encode())
        s.sendall(request)
        out = b""
        while chunk := s.recv(4096):
            out += chunk
    return out.decode()


def test_flush_request_writes_a_snapshot_without_a_walk(ls, build_dir):
    """`flush` (what endpoints and `top` send at every look) writes the sites now, and starts no
    retention walk: a walk would pause the program at every scrape."""
    script = write_script(ls.workdir, "svc.py", SERVICE)
    leakscope = str(build_dir / "leakscope")
    proc = subprocess.Popen([leakscope, "run", "-q", "--interval", "60", "-o", "svc.lsc", "--", sys.executable,
                             script.name], cwd=ls.workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        target = child_of(proc.pid)
        time.sleep(1.5)
        reply = control(target, b"flush\n")
        assert reply.startswith("ok ") and reply.strip().endswith("svc.lsc"), reply
        doc = ls.report("svc.lsc")
        assert doc["stacks"][0]["count"] >= 10000, doc["stacks"][:1]
        assert doc["retention"] is None, "flush must not walk the object graph"
        reply = control(target, b"snapshot\n")
        assert reply.startswith("ok "), reply
        assert ls.report("svc.lsc")["retention"] is not None, "snapshot walks"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
