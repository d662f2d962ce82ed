"""findleaks and heapdump when things go wrong: a process that exits while it is being checked,
and heap dumps cut short or corrupted (one line and status 2, never a crash or a hang)."""
import json
import subprocess
import time

import pytest

from conftest import Target, e2e_program

EXITING = '''\
import time
KEEP = [("r%d" % i, [i]) for i in range(100000)]
print("ready", flush=True)
end = time.time() + 1.5
while time.time() < end:
    KEEP.append(str(len(KEEP)))
print("bye")
'''


def test_a_process_that_exits_while_it_is_checked(ls, python_any, targets):
    script = ls.workdir / "exiting.py"
    script.write_text(EXITING)
    t = Target([ls.exe, "run", "-q", "-o", "capture.lsc", "--", python_any, script.name], ls.workdir)
    targets.append(t)
    pid = int(subprocess.check_output(["pgrep", "-f", "-n", f"^{python_any} {script.name}"]).decode())
    outcomes = set()
    deadline = time.time() + 20
    while time.time() < deadline:
        r = ls.cli("findleaks", pid, "--format", "json", timeout=60)
        if r.returncode == 0:
            assert json.loads(r.out)["findleaks"]["totals"]["lost_bytes"] == 0
            outcomes.add("checked")
            continue
        assert r.returncode in (1, 2) and len(r.err.splitlines()) == 1 and r.err.startswith("leakscope: "), r.describe()
        outcomes.add("refused")
        if r.returncode == 2:  # no process any more
            break
    assert "checked" in outcomes and "refused" in outcomes, outcomes
    out, err = t.proc.communicate(timeout=30)
    assert t.proc.returncode == 0 and (t.out + out).decode() == "ready\nbye\n", err


def test_hostile_heap_dumps_get_one_line(ls, build_dir, targets):
    exe = e2e_program(build_dir, "lost_daemon")
    t = Target([ls.exe, "run", "-q", "-o", "capture.lsc", "--", exe], ls.workdir)
    targets.append(t)
    pid = int(subprocess.check_output(["pgrep", "-f", "-n", f"^{exe}$"]).decode())
    r = ls.cli("heapdump", pid, "-o", "good.dump", "-q")
    assert r.returncode == 0 and r.out == "", r.describe()
    t.finish()
    good = (ls.workdir / "good.dump").read_bytes()
    assert ls.cli("findleaks", "good.dump").returncode == 0
    cases = {
        "empty": b"",
        "header-only": good[:64],
        "cut-early": good[:200],
        "cut-middle": good[:len(good) // 2],
        "cut-before-end": good[:-10],
        "bad-magic": b"X" + good[1:],
        "flipped": good[:len(good) // 3] + bytes([good[len(good) // 3] ^ 0xFF]) + good[len(good) // 3 + 1:],
        "trailing": good + b"\0" * 100,
        "capture-not-dump": (ls.workdir / "capture.lsc").read_bytes(),
    }
    for name, data in cases.items():
        p = ls.workdir / f"{name}.dump"
        p.write_bytes(data)
        r = ls.cli("findleaks", p.name, timeout=60)
        assert r.returncode == 2, (name, r.describe())
        assert len(r.err.splitlines()) == 1 and r.err.startswith("leakscope: ") and r.out == "", (name, r.describe())
