"""Python targets: the leak is charged to the right line on every interpreter, the program's
output and exit status are untouched, and the program cannot see leakscope."""
import json
import os

import pytest

from conftest import fmt_stacks, innermost, is_line, marker_line, write_script

LEAK_SCRIPT = '''\
import sys

kept = []


def serve(n):
    text = ""
    for i in range(n):
        payload = {"id": i, "body": "x" * 40, "tags": [i, i + 1, i + 2]}
        text = str(payload)  # MARK-TRANSIENT
        kept.append((i, "req-%d" % i))  # MARK-KEPT
    return len(text)


n = int(sys.argv[1])
status = int(sys.argv[2])
last = serve(n)
print("kept", len(kept), "last", last)
print("checksum", sum(k[0] for k in kept) % 1000003, kept[-1][1])
sys.stdout.flush()
sys.exit(status)
'''

ITERATIONS = 200_000


def check_python_leak(ls, python, status):
    script = write_script(ls.workdir, "leaky_service.py", LEAK_SCRIPT)
    kept_line = marker_line(script, "MARK-KEPT")
    transient_line = marker_line(script, "MARK-TRANSIENT")
    cmd = [python.path, script.name, str(ITERATIONS), str(status)]

    plain = ls.plain(cmd)
    assert plain.returncode == status, plain.describe()
    traced = ls.run(cmd)
    assert traced.returncode == status, "exit status not preserved:\n" + traced.describe()
    assert traced.stdout == plain.stdout, "stdout differs under leakscope run"
    assert traced.stderr == plain.stderr, "stderr differs under leakscope run -q"

    doc = ls.report()
    cap = doc["capture"]
    assert cap["python_version"] == python.version
    assert cap["complete"] is True, doc["warnings"]
    assert cap["argv"] == [str(c) for c in cmd]

    py_stacks = [s for s in doc["stacks"] if s["layer"] == "python"]
    assert py_stacks, fmt_stacks(doc)
    biggest = max(py_stacks, key=lambda s: s["bytes"])
    assert is_line(innermost(biggest), script.name, kept_line), \
        f"biggest python stack is not line {kept_line}\n" + fmt_stacks(doc)
    assert innermost(biggest)["function"] == "serve"
    assert innermost(biggest)["native"] is False
    # The stack goes on to the caller at module level.
    assert any(f["function"] == "<module>" and is_line(f, script.name, marker_line(script, "last = serve(n)"))
               for f in biggest["frames"][1:]), fmt_stacks(doc)

    for s in doc["stacks"][:3]:
        assert not is_line(innermost(s), script.name, transient_line), \
            "the transient str() line is reported as live\n" + fmt_stacks(doc)

    # Each iteration keeps a 2-tuple and a "req-N" str (>= 100 bytes together); a few tuples
    # may come from CPython's free list (allocated before tracking), hence the 0.95 factor.
    assert biggest["count"] >= 0.95 * 2 * ITERATIONS, fmt_stacks(doc)
    assert biggest["bytes"] >= 0.95 * 100 * ITERATIONS, fmt_stacks(doc)
    assert biggest["bytes"] < 1000 * ITERATIONS, fmt_stacks(doc)
    totals = doc["totals"]
    assert totals["live_bytes"] >= biggest["bytes"] > 5_000_000
    assert totals["peak_bytes"] >= totals["live_bytes"]
    assert totals["alloc_bytes"] >= totals["live_bytes"]
    assert totals["alloc_count"] >= totals["live_count"] >= biggest["count"]


def test_python_leak_line(ls, python):
    check_python_leak(ls, python, status=0)


@pytest.mark.pythons("py3.11", "py3.13")
def test_python_exit_status_preserved(ls, python):
    check_python_leak(ls, python, status=3)


ENV_SCRIPT = '''\
import json, os, subprocess, sys
child_env = subprocess.run(["/usr/bin/env", "-0"], capture_output=True, check=True).stdout
print(json.dumps({
    "environ": dict(os.environ),
    "child_environ": sorted(e.decode("utf-8", "replace") for e in child_env.split(b"\\0") if e),
    "path": sys.path,
    "argv": sys.argv,
    "executable": sys.executable,
}, sort_keys=True))
'''


USER_PRELOAD = "/lib/x86_64-linux-gnu/libdl.so.2"  # harmless to preload


@pytest.mark.parametrize("user_preload", [False, True], ids=["clean-env", "user-LD_PRELOAD"])
def test_program_does_not_see_leakscope(ls, python, user_preload):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEAKSCOPE") and k != "LD_PRELOAD"}
    if user_preload:
        if not os.path.exists(USER_PRELOAD):
            pytest.skip(f"{USER_PRELOAD} not present")
        env["LD_PRELOAD"] = USER_PRELOAD
    script = write_script(ls.workdir, "show_env.py", ENV_SCRIPT)
    cmd = [python.path, script.name]
    plain = ls.plain(cmd, env=env)
    assert plain.returncode == 0, plain.describe()
    traced = ls.run(cmd, env=env)
    assert traced.returncode == 0, traced.describe()
    a, b = json.loads(plain.stdout), json.loads(traced.stdout)

    for seen in (b["environ"], dict(e.split("=", 1) for e in b["child_environ"])):
        assert not [k for k in seen if k.startswith("LEAKSCOPE")], sorted(seen)
        assert seen.get("LD_PRELOAD") == env.get("LD_PRELOAD"), seen.get("LD_PRELOAD")
    assert b["environ"] == a["environ"]
    assert b["child_environ"] == a["child_environ"]
    assert b["path"] == a["path"]
    assert b["argv"] == a["argv"]
    assert b["executable"] == a["executable"]
    assert traced.stderr == plain.stderr
