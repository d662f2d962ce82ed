"""Bounded captures: older snapshots are thinned (capture/thin.h, docs/architecture.md) by
rewriting the capture while the program runs. Real programs, real captures."""
import os
import signal
import stat

import pytest

from conftest import fmt_stacks, write_script

N_SITES = 600


def sites_program() -> str:
    # N_SITES allocation sites, one per line, every one growing all the time: the capture grows
    # fast (each snapshot carries every site), so thinning starts within a second.
    lines = ["import os, sys, time", "keep = []"]
    for i in range(N_SITES):
        lines.append(f"def f{i}(): keep.append(bytearray({1000 + i}))")
    lines.append("fns = [globals()['f%%d' %% i] for i in range(%d)]" % N_SITES)
    lines += [
        "end = time.time() + float(sys.argv[1])",
        "while time.time() < end:",
        "    for f in fns:",
        "        f()",
        "    time.sleep(0.004)",
        "print('rounds', len(keep) // len(fns))",
        "if sys.argv[2] == 'kill':",
        "    sys.stdout.flush()",
        "    os.kill(os.getpid(), 9)",
    ]
    return "\n".join(lines) + "\n"


def run_sites(ls, python, seconds, ending, thin_at=None, output="capture.lsc"):
    script = write_script(ls.workdir, "sites.py", sites_program())
    args = ["run", "-q", "-o", output, "--interval", "0.05", "--full-resolution", "1"]
    if thin_at:
        args += ["--thin-at", str(thin_at)]
    r = ls.cli(*args, "--", python.path, script.name, str(seconds), ending)
    return script, r


@pytest.mark.pythons("py3.12")
def test_thinning_keeps_verdict_and_sites(ls, python):
    script, r = run_sites(ls, python, 5, "exit", thin_at=16384)
    assert r.returncode == 0, r.describe()
    doc = ls.report()
    cap = doc["capture"]
    assert cap["complete"] is True, doc["warnings"]
    assert cap["thinned"] >= 2, cap
    assert not [w for w in doc["warnings"] if "thinned" in w], doc["warnings"]
    # Without thinning, one snapshot per 50 ms flush: about 100. Older than 1 s, buckets of
    # 0.1, 0.2, 0.4 s... keep far fewer.
    assert 15 <= cap["snapshots"] <= 75, cap
    assert doc["verdict"] == "leak", doc["findings"]
    assert len(doc["leaks"]) >= N_SITES * 0.9, len(doc["leaks"])
    # Every leaking site is one of the f{i} lines (the list that holds them grows at whichever
    # append resized it last, so the order at the top is not fixed).
    for leak in doc["leaks"]:
        f = leak["frames"][0]
        assert f["file"].endswith("sites.py"), fmt_stacks(doc)
        assert f["function"] == f"f{f['line'] - 3}" and 0 <= f["line"] - 3 < N_SITES, fmt_stacks(doc)
    # The series still spans the run, thinner at the start.
    t = doc["timeline"]["t_s"]
    assert t[0] < 1.0 and t[-1] > 4.5, t
    # The rewrite replaced the file atomically: nothing left beside it, still private.
    assert sorted(p.name for p in ls.workdir.iterdir()) == ["capture.lsc", "sites.py"]
    assert stat.S_IMODE(os.stat(ls.workdir / "capture.lsc").st_mode) == 0o600


@pytest.mark.pythons("py3.11")
def test_thinned_capture_survives_sigkill(ls, python):
    script, r = run_sites(ls, python, 4, "kill", thin_at=16384)
    assert r.returncode == -signal.SIGKILL or r.returncode == 128 + signal.SIGKILL, r.describe()
    doc = ls.report()
    assert doc["capture"]["complete"] is False
    assert doc["capture"]["thinned"] >= 1, doc["capture"]
    assert doc["leaks"], fmt_stacks(doc)
    assert doc["leaks"][0]["frames"][0]["file"].endswith("sites.py"), fmt_stacks(doc)
    assert sorted(p.name for p in ls.workdir.iterdir()) == ["capture.lsc", "sites.py"]


@pytest.mark.pythons("py3.12")
def test_capture_path_replaced_stops_thinning_not_tracking(ls, python):
    """If the capture's name no longer leads to the file being written (moved by the user),
    the agent must not write a new file there; it says so once and keeps capturing."""
    script = write_script(ls.workdir, "sites.py", sites_program())
    wrapper = write_script(ls.workdir, "mover.py", (
        "import os, runpy, sys, threading, time\n"
        "def move():\n"
        "    time.sleep(0.3)\n"
        "    os.rename('capture.lsc', 'moved.lsc')\n"
        "threading.Thread(target=move, daemon=True).start()\n"
        "sys.argv = ['sites.py', '4', 'exit']\n"
        "runpy.run_path('sites.py', run_name='__main__')\n"))
    r = ls.cli("run", "-q", "-o", "capture.lsc", "--interval", "0.05", "--full-resolution", "1",
               "--thin-at", "16384", "--", python.path, wrapper.name)
    assert not (ls.workdir / "capture.lsc").exists(), "a new file appeared at the old name"
    doc = ls.report("moved.lsc")
    assert any("older snapshots not thinned" in w for w in doc["warnings"]), doc["warnings"]
    # Tracking went on after the move: the sites grew to the end.
    assert doc["capture"]["complete"] is True, doc["warnings"]
    assert doc["capture"]["duration_s"] > 3.5, doc["capture"]
    top = doc["stacks"][0]
    assert top["frames"][0]["file"].endswith("sites.py") and top["count"] > 100, fmt_stacks(doc)
