"""`run --follow-fork` (docs/process-trees.md): forked children write captures of their own
beside the root's, and `report ROOT` shows the tree and merges what leaks in each process."""
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import write_script

POOL = '''
import multiprocessing as mp, os, sys, time
KEPT = []
def task(i):
    KEPT.append(bytearray(30000))   # TASK-LEAK: each worker keeps every result it made
    time.sleep(0.02)
    return i
def main():
    mp.set_start_method("fork")
    with mp.Pool(3) as pool:
        total = sum(pool.map(task, range(750), chunksize=1))
    print("sum", total)
    sys.exit(4)
main()
'''


def leak_entries(doc, filename, line):
    """The merged leaks whose innermost Python frame is filename:line."""
    out = []
    for lk in doc["leaks"]:
        py = [f for f in lk["frames"] if f.get("file") and not f.get("native")]
        if py and py[0]["file"].endswith(filename) and py[0]["line"] == line:
            out.append(lk)
    return out


def assert_route_leaks_in_every_worker(doc, workers_expected):
    """The root's children are the server's `workers_expected` workers, and the route's line
    (app.py:5) leaks in every one of them. A worker's stack to it may differ from the others'
    (forked from another call of the master: then the merged view lists it as a site of its
    own), so the entries at the line are taken together."""
    procs = doc["processes"]
    workers = [p for p in procs if p["parent"] == procs[0]["pid"]]
    assert len(workers) == workers_expected, json.dumps(procs, indent=1)
    entries = leak_entries(doc, "app.py", 5)
    assert entries, json.dumps(doc["leaks"][:3], indent=1)[:3000]
    pids = {p["pid"] for e in entries for p in e["processes"]}
    assert pids == {p["pid"] for p in workers}, (
        pids, [(p["pid"], p["verdict"], p["growth_bytes"]) for p in workers],
        [([p["pid"] for p in e["processes"]], [f["function"] for f in e["frames"]][:8]) for e in entries])


def test_pool_workers_leak_in_their_own_captures(ls):
    write_script(ls.workdir, "pool.py", POOL)
    r = ls.cli("run", "--follow-fork", "-q", "--interval", "0.2", "-o", "pool.lsc", "--",
               "/usr/bin/python3", "pool.py", timeout=120)
    assert r.returncode == 4 and r.out == "sum 280875\n", r.describe()  # output and status unchanged
    kids = sorted(p.name for p in ls.workdir.glob("pool.*.lsc"))
    assert len(kids) >= 3, kids
    for k in kids:
        assert (ls.workdir / k).stat().st_mode & 0o777 == 0o600
    doc = ls.report("pool.lsc", limit=50)
    procs = doc["processes"]
    root = procs[0]
    assert root["parent"] is None and root["complete"], procs
    workers = [p for p in procs if p["parent"] == root["pid"]]
    assert len(workers) >= 3, procs
    assert all(p["command"] == root["command"] for p in workers), procs
    leaking = [p for p in workers if p["verdict"] == "leak"]
    assert len(leaking) >= 2, json.dumps(procs, indent=1)
    assert doc["verdict"] == "leak"
    # One merged entry for the task's line, naming the workers it leaks in.
    entries = leak_entries(doc, "pool.py", 5)
    assert entries, json.dumps(doc["leaks"][:3], indent=1)[:3000]
    pids = {p["pid"] for p in entries[0]["processes"]}
    assert {p["pid"] for p in leaking} <= pids, (pids, leaking)
    # A worker's capture read on its own, or named by --pid: its leak, not the tree's.
    one = ls.report(leaking[0]["capture"])
    assert "processes" not in one
    assert leak_entries(one, "pool.py", 5), one["leaks"][:2]
    r = ls.cli("report", "pool.lsc", "--pid", str(leaking[0]["pid"]), "--format", "json")
    assert r.returncode == 0 and json.loads(r.out)["capture"]["pid"] == leaking[0]["pid"], r.describe()
    r = ls.cli("diff", "pool.lsc@0.5", "pool.lsc", "--pid", str(leaking[0]["pid"]), "--format", "json")
    assert r.returncode == 0 and json.loads(r.out)["sites"], r.describe()
    r = ls.cli("report", "pool.lsc", "--pid", "1")
    assert r.returncode == 2 and "process 1 is not in the process tree of pool.lsc" in r.err, r.describe()
    # export merges the tree: the task's line holds what every worker kept.
    r = ls.cli("export", "pool.lsc", "--format", "collapsed")
    assert r.returncode == 0, r.describe()
    task = sum(int(line.rsplit(" ", 1)[1]) for line in r.out.splitlines() if "task (" in line and "pool.py:5)" in line)
    kept = sum(p["live_bytes"] for p in workers)
    assert task >= 750 * 30000 * 0.8, (task, kept)  # 750 results of 30,000 bytes, kept across the workers
    # diff merges the tree too: the task's line grew by what every worker kept.
    r = ls.cli("diff", "pool.lsc@0.1", "pool.lsc", "--format", "json")
    assert r.returncode == 0, r.describe()
    d = json.loads(r.out)
    assert any("A merges" in w for w in d["warnings"]), d["warnings"]
    grew = [s for s in d["sites"] if any((f.get("file") or "").endswith("pool.py") and f.get("line") == 5
                                         for f in s["frames"][:1])]
    assert grew and grew[0]["delta_bytes"] >= 750 * 30000 * 0.8, grew[:1]
    text = ls.report_raw("pool.lsc", fmt="text").out
    assert re.search(r"Processes \(run --follow-fork\): \d+, \d+ leaking", text), text[:3000]
    assert re.search(r"in \d+ processes: pid \d+ \+", text), text[:3000]


FORKS = '''
import os, sys
for i in range(12):
    pid = os.fork()
    if pid == 0:
        junk = [bytearray(1000) for _ in range(100)]
        os._exit(i)
    os.waitpid(pid, 0)
print("forked 12")
'''


def test_max_processes_bounds_the_captures(ls):
    write_script(ls.workdir, "forks.py", FORKS)
    r = ls.cli("run", "--follow-fork", "--max-processes", "4", "-q", "-o", "f.lsc", "--", "/usr/bin/python3",
               "forks.py", timeout=120)
    assert r.returncode == 0 and r.out == "forked 12\n", r.describe()
    kids = list(ls.workdir.glob("f.*.lsc"))
    assert len(kids) == 3, kids  # the root counts: 4 captures in all
    doc = ls.report("f.lsc")
    assert len(doc["processes"]) == 4
    assert sorted(p["exit"] for p in doc["processes"][1:]) == ["exit 0", "exit 1", "exit 2"], doc["processes"]
    r = ls.cli("run", "--follow-fork", "--mode", "events", "-o", "e.lsc", "--", "/usr/bin/python3", "-c", "0")
    assert r.returncode == 2 and "aggregate" in r.err, r.describe()


APP = '''
LEAK = []
def app(environ, start_response):
    if environ.get("PATH_INFO") == "/leak":
        LEAK.append(bytearray(20000))   # ROUTE-LEAK
    body = b"ok\\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def drive(port, seconds, threads=8):
    """Requests to /leak from several threads at once, so every worker gets its share."""
    stop = time.monotonic() + seconds
    done = [0]

    def loop():
        while time.monotonic() < stop:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                c.request("GET", "/leak")
                c.getresponse().read()
                c.close()
                done[0] += 1
            except OSError:
                time.sleep(0.05)
            time.sleep(0.004)

    ts = [threading.Thread(target=loop) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return done[0]


def serve_gunicorn(ls, extra, seconds):
    write_script(ls.workdir, "app.py", APP)
    port = free_port()
    proc = subprocess.Popen([str(ls.exe), "run", "--follow-fork", "-q", "--interval", "0.25", "-o", "g.lsc", "--",
                             "/usr/bin/python3", "-m", "gunicorn", "--workers", "4", "--bind", f"127.0.0.1:{port}",
                             *extra, "app:app"], cwd=ls.workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        wait_listening(port)
        time.sleep(1.0)  # every worker booted
        n = drive(port, seconds)
        os.kill(proc.pid, signal.SIGTERM)  # leakscope passes it on; gunicorn stops its workers
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    return proc.returncode, n, err.decode(errors="replace")


@pytest.mark.skipif(not os.path.exists("/usr/lib/python3/dist-packages/gunicorn"), reason="Debian gunicorn missing")
def test_gunicorn_workers_each_leak_the_route(ls):
    rc, n, err = serve_gunicorn(ls, [], 5.0)
    assert rc == 0 and n > 200, (rc, n, err[-2000:])
    assert_route_leaks_in_every_worker(ls.report("g.lsc", limit=50), 4)


@pytest.mark.skipif(not os.path.exists("/usr/lib/python3/dist-packages/gunicorn"), reason="Debian gunicorn missing")
def test_gunicorn_recycled_workers(ls):
    rc, n, err = serve_gunicorn(ls, ["--max-requests", "250"], 3.0)
    assert rc == 0 and n > 600, (rc, n, err[-2000:])
    doc = ls.report("g.lsc", limit=50)
    procs = doc["processes"]
    workers = [p for p in procs if p["parent"] == procs[0]["pid"]]
    assert len(workers) >= 6, json.dumps(procs, indent=1)  # the first 4 and their replacements
    rec = doc["process_tree"]["recycled_workers"]
    assert rec and rec[0]["workers"] == len(workers) and rec[0]["median_growth_bytes"] > 1 << 20, rec
    # Each worker's end as its parent reaped it: a recycled worker leaves with status 0; at the
    # shutdown the master may have to kill one (SIGTERM).
    ends = [p["exit"] for p in workers]
    assert set(ends) <= {"exit 0", "signal 15"} and ends.count("exit 0") >= len(workers) - 4, ends


@pytest.mark.skipif(not os.path.exists("/usr/lib/python3/dist-packages/gunicorn"), reason="Debian gunicorn missing")
def test_attach_children_of_a_running_gunicorn(ls):
    """attach --children: the master and its workers, each into its own capture of one tree;
    detach --children undoes them all and the server runs on."""
    write_script(ls.workdir, "app.py", APP)
    port = free_port()
    server = subprocess.Popen(["/usr/bin/python3", "-m", "gunicorn", "--workers", "2", "--bind", f"127.0.0.1:{port}",
                               "app:app"], cwd=ls.workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              start_new_session=True)
    try:
        wait_listening(port)
        time.sleep(1.0)
        r = ls.cli("attach", str(server.pid), "--children", "--interval", "0.25", "-o", "a.lsc", timeout=120)
        assert r.returncode == 0, r.describe()
        assert len(re.findall(r"attached to process \d+ \(a child of %d\)" % server.pid, r.out)) == 2, r.out
        n = drive(port, 4.0)
        assert n > 200, n
        r = ls.cli("detach", str(server.pid), "--children", timeout=120)
        assert r.returncode == 0 and len(re.findall(r"detached from process", r.out)) == 3, r.describe()
        # Detached: the server still answers.
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("GET", "/")
        assert c.getresponse().read() == b"ok\n"
        c.close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.communicate(timeout=60)
    doc = ls.report("a.lsc", limit=50)
    procs = doc["processes"]
    workers = [p for p in procs if p["parent"] == server.pid]
    assert procs[0]["pid"] == server.pid and len(workers) == 2, json.dumps(procs, indent=1)
    entries = leak_entries(doc, "app.py", 5)
    assert entries, json.dumps(doc["leaks"][:3], indent=1)[:3000]
    assert {p["pid"] for p in entries[0]["processes"]} == {p["pid"] for p in workers}, entries[0]["processes"]


SPAWNED = '''
import multiprocessing as mp, os, subprocess, sys, time
KEPT = []
def task(i):
    KEPT.append(bytearray(30000))   # line 5: kept by each worker
    time.sleep(0.005)
    return i
if __name__ == "__main__":
    mp.set_start_method(sys.argv[1])
    with mp.Pool(2) as pool:
        total = sum(pool.map(task, range(200), chunksize=1))
    sub = subprocess.run(["/usr/bin/python3", "-c", "print('sub')"], capture_output=True, text=True).stdout
    pid = os.posix_spawn("/usr/bin/python3", ["/usr/bin/python3", "-c", "import sys; sys.exit(3)  # posix"], os.environ)
    _, status = os.waitpid(pid, 0)
    print("sum", total, sub.strip(), os.waitstatus_to_exitcode(status))
'''


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_exec_children_spawn_forkserver_subprocess(ls, method):
    """Children that exec (multiprocessing's spawn and forkserver, subprocess's vfork) join the
    tree with captures of their own; the forkserver's workers sit under the forkserver."""
    write_script(ls.workdir, "sp.py", SPAWNED)
    r = ls.cli("run", "--follow-fork", "-q", "--interval", "0.2", "-o", "s.lsc", "--", "/usr/bin/python3", "sp.py",
               method, timeout=120)
    assert r.returncode == 0 and r.out == "sum 19900 sub 3\n", r.describe()
    doc = ls.report("s.lsc", limit=200)
    procs = doc["processes"]
    root = procs[0]["pid"]
    cmd = {p["pid"]: " ".join(p["command"]) for p in procs}
    sub = [p for p in procs if p["parent"] == root and "print('sub')" in cmd[p["pid"]]]
    assert len(sub) == 1 and sub[0]["exit"] == "exit 0", json.dumps(procs, indent=1)
    spawned = [p for p in procs if p["parent"] == root and "# posix" in cmd[p["pid"]]]  # os.posix_spawn
    assert len(spawned) == 1 and spawned[0]["exit"] == "exit 3", json.dumps(procs, indent=1)
    if method == "forkserver":
        server = [p for p in procs if p["parent"] == root and "forkserver" in cmd[p["pid"]]]
        assert len(server) == 1, json.dumps(procs, indent=1)
        workers = [p for p in procs if p["parent"] == server[0]["pid"]]
    else:
        workers = [p for p in procs if p["parent"] == root and "spawn_main" in cmd[p["pid"]]]
    assert len(workers) == 2, json.dumps(procs, indent=1)
    kept = [s for s in doc["stacks"] if any((f.get("file") or "").endswith("sp.py") and f.get("line") == 5
                                            for f in s["frames"][:1])]
    assert kept and {p["pid"] for p in kept[0]["processes"]} == {w["pid"] for w in workers}, kept[:1]
    assert kept[0]["bytes"] >= 200 * 30000 * 0.5, kept[0]["bytes"]  # workers end by SIGTERM: up to a flush lost


@pytest.mark.skipif(not os.path.exists("/usr/lib/uwsgi/plugins/python3_plugin.so"), reason="Debian uwsgi-plugin-python3 missing")
def test_uwsgi_preforked_workers(ls):
    """uWSGI (a C program embedding libpython) pre-forks its workers after loading the app: the
    route's line leaks in both workers."""
    write_script(ls.workdir, "app.py", APP)
    port = free_port()
    proc = subprocess.Popen([str(ls.exe), "run", "--follow-fork", "-q", "--interval", "0.25", "-o", "u.lsc", "--",
                             "/usr/bin/uwsgi", "--plugin", "python3", "--http-socket", f"127.0.0.1:{port}",
                             "--wsgi-file", "app.py", "--callable", "app", "--processes", "2", "--master",
                             "--disable-logging"], cwd=ls.workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        wait_listening(port)
        time.sleep(0.5)
        n = drive(port, 4.0, threads=4)
        os.killpg(proc.pid, signal.SIGINT)  # uWSGI: stop master and workers now
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert n > 200, n
    assert_route_leaks_in_every_worker(ls.report("u.lsc", limit=50), 2)


FORK_LEAK = '''
import os, sys, time, warnings
warnings.simplefilter("default")   # CPython 3.12+ warns on fork() in a multi-threaded process
KEEP = []
def grow():
    for _ in range(20):
        KEEP.append(bytearray(50000))   # line 7: the child's leak
        time.sleep(0.02)
pids = []
for _ in range(2):
    pid = os.fork()
    if pid == 0:
        grow()
        os._exit(0)
    pids.append(pid)
for pid in pids:
    os.waitpid(pid, 0)
print("done")
'''


@pytest.mark.pythons("py3.12", "py3.13", "debian3.11")
def test_fork_children_on_each_python(ls, python):
    """On each CPython, forked children charge their blocks to their own lines, and the program
    sees no sign of leakscope's threads (3.12+ warns when fork() runs with other threads)."""
    write_script(ls.workdir, "fl.py", FORK_LEAK)
    r = ls.cli("run", "--follow-fork", "-q", "-o", "f.lsc", "--", python.path, "fl.py", timeout=120)
    assert r.returncode == 0 and r.out == "done\n" and r.err == "", r.describe()
    doc = ls.report("f.lsc", limit=100)
    kids = [p for p in doc["processes"][1:]]
    assert len(kids) == 2 and all(p["exit"] == "exit 0" for p in kids), doc["processes"]
    # Each child knows what it inherited: the interpreter's heap at the fork.
    assert all(p["inherited_bytes"] > 100_000 for p in kids), doc["processes"]
    one = ls.report(kids[0]["capture"])
    assert any(f"forked or started by process {doc['processes'][0]['pid']}" in w for w in one["warnings"]), one["warnings"]
    line = [s for s in doc["stacks"] if any((f.get("file") or "").endswith("fl.py") and f.get("line") == 7
                                            for f in s["frames"][:1])]
    assert line and {p["pid"] for p in line[0]["processes"]} == {p["pid"] for p in kids}, line[:1]
    assert line[0]["bytes"] >= 2 * 20 * 50000, line[0]["bytes"]
