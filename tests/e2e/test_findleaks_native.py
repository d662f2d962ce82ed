"""findleaks on a native daemon while it runs, started by `run` (precise roots) or attached
(conservative roots): the lost Records are found under the function that made them, and the
daemon runs on with the same output and exit status."""
import json
import subprocess
import time

import pytest

from conftest import PROGRAMS_DIR, Target, e2e_program, frame_str, marker_line

SRC = PROGRAMS_DIR / "lost_daemon.cpp"


def check(ls, pid, roots):
    r = ls.cli("findleaks", pid, "--format", "json")
    assert r.returncode == 0, r.describe()
    fl = json.loads(r.out)["findleaks"]
    assert fl["roots"] == roots, fl["notes"]
    line = marker_line(SRC, "MAKE-RECORD")
    direct = [g for g in fl["lost"] if g["kind"] == "direct" and g["layer"] == "malloc"]
    assert direct, fl
    top = direct[0]
    assert any(f["function"] and f["function"].startswith("make_record") and f["line"] == line for f in top["frames"]), \
        [frame_str(f) for f in top["frames"]]
    # each lost Record owns its vector's buffer: lost with it
    assert fl["totals"]["indirect_count"] >= top["count"] * 0.9, fl["totals"]
    return top["count"]


@pytest.mark.parametrize("how", ["run", "attach"])
def test_native_daemon_checked_while_it_runs(ls, build_dir, targets, how):
    exe = e2e_program(build_dir, "lost_daemon")
    if how == "run":
        t = Target([ls.exe, "run", "-q", "-o", "capture.lsc", "--", exe], ls.workdir)
        targets.append(t)
        pid = int(subprocess.check_output(["pgrep", "-f", "-n", f"^{exe}$"]).decode())
    else:
        t = Target([exe], ls.workdir)
        targets.append(t)
        pid = t.pid
        r = ls.cli("attach", pid, "-o", "capture.lsc", "-q")
        assert r.returncode == 0, r.describe()
    time.sleep(0.5)
    first = check(ls, pid, "precise" if how == "run" else "conservative")
    time.sleep(0.5)
    second = check(ls, pid, "precise" if how == "run" else "conservative")
    assert second > first > 20, (first, second)
    if how == "attach":
        r = ls.cli("detach", pid, "-q")
        assert r.returncode == 0, r.describe()
    code, out, err = t.finish()
    assert code == 0 and out == "ready\ndone 1\n", (code, out, err)


def test_events_mode(ls, build_dir, targets):
    """--mode events keeps the live table only with --findleaks; the answer is the same."""
    prog = build_dir / "fl_mixed"
    totals = []
    for mode in ("aggregate", "events"):
        out = f"{mode}.lsc"
        r = ls.cli("run", "--findleaks", "-q", "--mode", mode, "-o", out, "--", prog)
        assert r.returncode == 23, r.describe()
        doc = ls.report(out)
        totals.append({k: doc["findleaks"]["totals"][k] for k in ("direct_bytes", "indirect_bytes", "lost_count")})
    assert totals[0] == totals[1], totals
    exe = e2e_program(build_dir, "lost_daemon")
    t = Target([ls.exe, "run", "-q", "--mode", "events", "-o", "e.lsc", "--", exe], ls.workdir)
    targets.append(t)
    pid = int(subprocess.check_output(["pgrep", "-f", "-n", f"^{exe}$"]).decode())
    r = ls.cli("findleaks", pid)
    assert r.returncode == 1 and "records events only" in r.err and len(r.err.splitlines()) == 1, r.describe()
    code, out, _ = t.finish()
    assert code == 0 and out == "ready\ndone 1\n"
