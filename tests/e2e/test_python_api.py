"""leakscope.track() and leakscope.report() (pylib/leakscope, docs/python-api.md): a program
that tracks itself; its output and exit status are unchanged."""
import os

from conftest import BUILD, SOURCE, run_process

PROGRAM = '''\
import sys
import leakscope

KEEP = []

def work():
    for i in range(3000):
        KEEP.append(bytearray(1000))       # line 8: the leak
    print("worked", len(KEEP))

with leakscope.track(output="self.lsc", interval=0.1) as path:
    work()
print("tracked into", path is not None)
doc = leakscope.report("self.lsc")
top = doc["stacks"][0]
print("TOP", top["frames"][0]["file"].rsplit("/", 1)[-1], top["frames"][0]["line"], top["bytes"])
sys.exit(7)
'''


def test_track_self(tmp_path):
    (tmp_path / "prog.py").write_text(PROGRAM)
    env = dict(os.environ, PYTHONPATH=str(SOURCE / "pylib"), LEAKSCOPE_BUILD=str(BUILD))
    r = run_process(["/usr/bin/python3", "prog.py"], cwd=tmp_path, timeout=120, env=env)
    assert r.returncode == 7, r.describe()
    lines = r.out.splitlines()
    assert lines[:2] == ["worked 3000", "tracked into True"], r.describe()
    top = lines[2].split()
    assert top[:3] == ["TOP", "prog.py", "8"], r.describe()
    assert int(top[3]) >= 3000 * 1000, r.describe()
    assert r.err == "", r.describe()
    assert (tmp_path / "self.lsc").stat().st_mode & 0o777 == 0o600
    # The same program's output without leakscope loaded: only the tracked line differs.
    plain = PROGRAM.replace("import leakscope\n", "import contextlib\n").replace(
        'leakscope.track(output="self.lsc", interval=0.1)', "contextlib.nullcontext(1)").split("doc =")[0]
    (tmp_path / "plain.py").write_text(plain + "sys.exit(7)\n")
    p = run_process(["/usr/bin/python3", "plain.py"], cwd=tmp_path, timeout=60, env=env)
    assert p.returncode == 7 and p.out.splitlines() == lines[:2], p.describe()


def test_track_without_agent_warns_and_runs(tmp_path):
    (tmp_path / "prog.py").write_text(
        "import leakscope\nwith leakscope.track(output='x.lsc') as p:\n    print('body ran', p)\n")
    env = dict(os.environ, PYTHONPATH=str(SOURCE / "pylib"), LEAKSCOPE_BUILD=str(tmp_path / "nowhere"))
    r = run_process(["/usr/bin/python3", "prog.py"], cwd=tmp_path, timeout=60, env=env)
    assert r.returncode == 0 and r.out == "body ran None\n", r.describe()
    assert "RuntimeWarning" in r.err and "leakscope" in r.err, r.describe()


MARKS = '''\
import leakscope

for cycle in range(3):   # stop() answers before the agent has handed its memory back: a start
    leakscope.start(f"c{cycle}.lsc")   # right after it waits for that, then starts afresh
    m0 = leakscope.mark()
    big = bytearray(8 << 20)
    del big
    keep = [bytearray(1000) for _ in range(2000)]
    m1 = leakscope.mark()
    m2 = leakscope.mark()
    print("left", m1.live_bytes - m0.live_bytes, "peak", m1.peak_bytes - m0.live_bytes,
          "peak2", m2.peak_bytes - m1.live_bytes)
    leakscope.stop()
'''


def test_mark_and_restart(tmp_path):
    (tmp_path / "prog.py").write_text(MARKS)
    env = dict(os.environ, PYTHONPATH=str(SOURCE / "pylib"), LEAKSCOPE_BUILD=str(BUILD))
    r = run_process(["/usr/bin/python3", "prog.py"], cwd=tmp_path, timeout=120, env=env)
    assert r.returncode == 0 and r.err == "", r.describe()
    lines = r.out.splitlines()
    assert len(lines) == 3, r.describe()
    for line in lines:
        _, left, _, peak, _, peak2 = line.split()
        # 2000 blocks of 1000 bytes left; the 8 MiB block came and went between the marks; the
        # next mark's window starts at the live total, so its peak is (about) nothing.
        assert 2_000_000 <= int(left) < 2_400_000, r.describe()
        assert (8 << 20) - 64_000 <= int(peak) < (8 << 20) + 2_400_000, r.describe()  # less what mark() freed
        assert 0 <= int(peak2) < 64_000, r.describe()
    for c in range(3):
        rep = run_process([str(BUILD / "leakscope"), "report", f"c{c}.lsc", "--format", "json"], cwd=tmp_path,
                          timeout=60)
        assert rep.returncode == 0, rep.describe()
