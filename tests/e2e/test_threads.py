"""Threads: each thread's leak is charged to its own function and line."""
from pathlib import Path

from conftest import PROGRAMS_DIR, e2e_program, fmt_stacks, innermost, marker_line, write_script

PY_THREADS = '''\
import sys
import threading

N = int(sys.argv[1])
kept = {}
start = threading.Barrier(4)


def leak_alpha():
    mine = kept.setdefault("alpha", [])
    start.wait()
    for i in range(N):
        mine.append("alpha-%08d" % i)  # LEAK-alpha


def leak_beta():
    mine = kept.setdefault("beta", [])
    start.wait()
    for i in range(N):
        mine.append("beta--%08d" % i)  # LEAK-beta


def leak_gamma():
    mine = kept.setdefault("gamma", [])
    start.wait()
    for i in range(N):
        mine.append("gamma-%08d" % i)  # LEAK-gamma


def leak_delta():
    mine = kept.setdefault("delta", [])
    start.wait()
    for i in range(N):
        mine.append("delta-%08d" % i)  # LEAK-delta


threads = [threading.Thread(target=f) for f in (leak_alpha, leak_beta, leak_gamma, leak_delta)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(sorted((k, len(v)) for k, v in kept.items()))
'''

NAMES = ("alpha", "beta", "gamma", "delta")


def test_python_threads(ls, python):
    n = 40_000
    script = write_script(ls.workdir, "threads_leak.py", PY_THREADS)
    r = ls.run([python.path, script.name, str(n)])
    assert r.returncode == 0, r.describe()
    assert r.out.strip() == str(sorted((k, n) for k in NAMES))
    doc = ls.report()
    assert doc["capture"]["complete"] is True, doc["warnings"]
    expected = {(f"leak_{k}", marker_line(script, f"LEAK-{k}")) for k in NAMES}
    top = doc["stacks"][:4]
    got = {(innermost(s)["function"], innermost(s)["line"]) for s in top
           if Path(innermost(s)["file"] or "").name == script.name}
    assert got == expected, fmt_stacks(doc)
    for s in top:
        assert s["layer"] == "python"
        assert s["count"] >= n, fmt_stacks(doc)           # one str per iteration (+ list growth)
        assert s["bytes"] >= n * 50, fmt_stacks(doc)      # a 15-char str is > 50 bytes


def test_native_threads(ls, build_dir):
    exe = e2e_program(build_dir, "threads_leak")
    src = PROGRAMS_DIR / "threads_leak.cpp"
    n = 700
    r = ls.run([exe, str(n)])
    assert r.returncode == 0, r.describe()
    assert r.out.strip() == f"threads done {n}"
    doc = ls.report()
    assert doc["capture"]["complete"] is True, doc["warnings"]
    expected = {(f"worker_{k}", marker_line(src, f"LEAK-{k.upper()}")) for k in NAMES}
    top = doc["stacks"][:4]
    got = {(innermost(s)["function"], innermost(s)["line"]) for s in top
           if (innermost(s)["file"] or "").endswith("threads_leak.cpp")}
    assert got == expected, fmt_stacks(doc)
    for s in top:
        assert s["layer"] == "malloc"
        assert (s["count"], s["bytes"]) == (n, n * 256), fmt_stacks(doc)


def test_allocation_during_thread_teardown(ls, build_dir):
    """A pthread key destructor that runs after the agent's own (thread teardown) may allocate:
    the program runs on unharmed and those blocks are still charged to their stack."""
    prog = build_dir / "e2e_thread_exit_alloc"
    n = 24
    r = ls.run([str(prog), str(n)])
    assert r.returncode == 0, r.describe()
    assert r.out.strip() == f"kept {n}", r.describe()
    doc = ls.report()
    hits = [s for s in doc["stacks"] if any("teardown_alloc" in (f["function"] or "") for f in s["frames"])]
    assert hits, "the teardown allocations are missing from the report"
    assert sum(s["count"] for s in hits) == n
    assert sum(s["bytes"] for s in hits) == 48 * n
