"""`leakscope top PID` (docs/top.md), the bash completion and man page the CLI writes from its own
definition, and `make install` (README "Install")."""
import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import termios
import time
from pathlib import Path

import pytest

from conftest import PROGRAMS_DIR, SOURCE, Target, assert_one_line_error, write_script
from test_snapshot import child_of

LEAKY = '''
import os, sys, time
cache = []
def grow_cache(n):
    for i in range(n):
        cache.append(bytearray(256))  # TOP-LEAK
start = time.monotonic()
while not os.path.exists("stop") and time.monotonic() - start < 40:
    grow_cache(400)
    time.sleep(0.02)
print("done", len(cache) > 0)
sys.exit(3)
'''


class Watched:
    """LEAKY under `leakscope run`; stop() ends it and returns (exit status, stdout)."""

    def __init__(self, ls, python, interval="0.25"):
        write_script(ls.workdir, "leaky.py", LEAKY)
        self.dir = ls.workdir
        self.proc = subprocess.Popen([str(ls.exe), "run", "-q", "--interval", interval, "-o", "leaky.lsc", "--", python,
                                      "leaky.py"], cwd=ls.workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.pid = child_of(self.proc.pid)

    def stop(self):
        (self.dir / "stop").write_text("")
        out, err = self.proc.communicate(timeout=30)
        return self.proc.returncode, out.decode(), err.decode()


@pytest.fixture
def watched(ls, python_any):
    w = Watched(ls, python_any)
    yield w
    if w.proc.poll() is None:
        w.stop()


SITE = re.compile(r"^\s*(LEAK)?\s+\+(\S+ \S+/(?:s|min))\s+\S+ \S+\s+.*leaky\.py:\d+ in grow_cache", re.M)


def test_top_once_and_piped_frames_name_the_leak(ls, watched):
    time.sleep(4.5)  # enough snapshots after warm-up for the verdict engine to call the leak
    r = ls.cli("top", str(watched.pid), "--once", timeout=60)
    assert r.returncode == 0, r.describe()
    assert "\x1b" not in r.out, "no escapes when stdout is not a terminal"
    assert f"process {watched.pid} (run)" in r.out and "Verdict: LEAK" in r.out, r.out
    m = SITE.search(r.out)
    assert m and m.group(1) == "LEAK", r.out  # named, leaking, with a growing rate
    assert "Memory by layer" in r.out and "RSS" in r.out, r.out
    t0 = time.monotonic()
    r = ls.cli("top", str(watched.pid), "--interval", "0.5", "-n", "3", timeout=60)
    assert r.returncode == 0, r.describe()
    frames = r.out.split("leakscope top: process")[1:]
    assert len(frames) == 3, r.out
    assert time.monotonic() - t0 >= 1.0, "frames come one interval apart"
    for f in frames:
        assert SITE.search(f), f
    tracked = [float(x) for x in re.findall(r"tracked ([\d.]+) s", r.out)]
    assert tracked == sorted(tracked) and tracked[-1] > tracked[0], tracked  # each frame is fresh
    code, out, _ = watched.stop()
    assert (code, out) == (3, "done True\n")


def test_top_on_an_attached_process(ls, targets, python_any):
    """top works the same on a process `leakscope attach` tracks, and leaves it attached."""
    t = Target([python_any, PROGRAMS_DIR / "attach_target.py", "loop"], ls.workdir)
    targets.append(t)
    r = ls.cli("attach", str(t.pid), "-q", "-o", "att.lsc", "--interval", "0.25", timeout=60)
    assert r.returncode == 0, r.describe()
    t.touch("leak.on")
    time.sleep(3.0)
    r = ls.cli("top", str(t.pid), "--interval", "0.5", "-n", "2", timeout=60)
    assert r.returncode == 0, r.describe()
    frames = r.out.split("leakscope top: process")[1:]
    assert len(frames) == 2 and all(f"{t.pid} (attached)" in f for f in frames), r.out
    assert re.search(r"attach_target\.py:\d+ in main", frames[-1]), r.out  # the LEAK-LOOP line's site
    r = ls.cli("detach", str(t.pid), timeout=60)  # still attached after top: detach works
    assert r.returncode == 0, r.describe()
    os.remove(ls.workdir / "leak.on")
    rc, out, err = t.finish()
    assert rc == 0 and out == "ready\ndone\n", (rc, out, err)


def test_each_refresh_flushes(ls, python_any):
    """With snapshots every 60 s, only top's own flush requests put sites in the capture."""
    w = Watched(ls, python_any, interval="60")
    try:
        time.sleep(1.0)
        r = ls.cli("top", str(w.pid), "--interval", "0.3", "-n", "3", timeout=60)
        assert r.returncode == 0, r.describe()
        snaps = [int(x) for x in re.findall(r"tracked [\d.]+ s, (\d+) snapshots;", r.out)]
        assert len(snaps) == 3 and snaps[0] >= 1 and snaps[2] >= snaps[0] + 2, r.out
        frames = r.out.split("leakscope top: process")[1:]
        assert all(SITE.search(f) for f in frames[1:]), r.out  # top's own rate between its refreshes
    finally:
        assert w.stop()[0] == 3


def read_until(fd, needle: bytes, timeout: float) -> bytes:
    got, deadline = b"", time.monotonic() + timeout
    while needle not in got and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.2)[0]:
            try:
                got += os.read(fd, 65536)
            except OSError:
                break
    return got


def top_on_pty(ls, pid: int, quit_key: bytes):
    """`top` on a terminal: what it drew, and its exit status after quit_key."""
    child, fd = pty.fork()
    if child == 0:
        os.chdir(ls.workdir)
        os.execv(str(ls.exe), [str(ls.exe), "top", str(pid), "--interval", "0.5"])
    status = None
    try:
        # 80 columns: the line of the leaking site must show its name in a standard terminal.
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 80, 0, 0))
        drawn = read_until(fd, b"grow_cache", 30)
        drawn += read_until(fd, b"Memory by layer", 5)
        os.write(fd, quit_key)
        deadline = time.monotonic() + 10
        while status is None and time.monotonic() < deadline:
            drawn += read_until(fd, b"\x1b[?1049l", 0.3)
            done, st = os.waitpid(child, os.WNOHANG)
            status = st if done else None
        assert status is not None, "top did not quit on %r" % quit_key
        return drawn, status
    finally:
        if status is None:
            os.kill(child, signal.SIGKILL)
            os.waitpid(child, 0)
        os.close(fd)


def test_top_on_a_terminal_quits_and_leaves_the_process_tracked(ls, watched):
    time.sleep(1.0)
    for key in (b"q", b"\x03"):  # q, then Ctrl-C
        drawn, status = top_on_pty(ls, watched.pid, key)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, (key, status, drawn[-500:])
        assert b"\x1b[?1049h" in drawn and b"grow_cache" in drawn, drawn[-2000:]
        assert drawn.rstrip().endswith(b"\x1b[?1049l"), "the terminal is restored: %r" % drawn[-200:]
    r = ls.cli("snapshot", str(watched.pid), timeout=60)
    assert r.returncode == 0 and "leaky.lsc" in r.out, r.describe()
    # The program ends while watched: a last line says so, exit 0.
    top = subprocess.Popen([str(ls.exe), "top", str(watched.pid), "--interval", "0.3"], cwd=ls.workdir,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(1.0)
    code, out, err = watched.stop()
    tout, terr = top.communicate(timeout=30)
    assert (code, out) == (3, "done True\n"), "the program's output and status are its own"
    assert "capture written" not in err and "incomplete" not in err, err
    assert top.returncode == 0 and terr.decode().strip() == f"leakscope: process {watched.pid} exited", terr
    assert b"grow_cache" in tout


def test_top_errors(ls):
    assert_one_line_error(ls.cli("top", "4000000", "--once", timeout=30), 2)
    assert_one_line_error(ls.cli("top", "not-a-pid", "--once", timeout=30), 2)
    r = ls.cli("top", str(os.getpid()), "--once", timeout=30)  # pytest itself: not tracked
    assert_one_line_error(r, 1)
    assert "not tracked" in r.err
    assert_one_line_error(ls.cli("top", "1", "--interval", "0", timeout=30), 2)


def help_subcommands(ls) -> list:
    r = ls.cli("--help", timeout=30)
    assert r.returncode == 0, r.describe()
    text = r.out.split("Subcommands:", 1)[1]
    names = re.findall(r"^  (\S+)", text, re.M)
    assert {"run", "report", "top", "snapshot"} <= set(names), r.out
    return names


def complete(script: Path, *words: str) -> list:
    """What the completion offers for `leakscope WORDS...` (the last word is being completed)."""
    cmd = ('source "$1"; shift; COMP_WORDS=(leakscope "$@"); COMP_CWORD=$#; _leakscope; '
           'printf "%s\\n" "${COMPREPLY[@]}"')
    r = subprocess.run(["bash", "-c", cmd, "bash", str(script), *words], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and not r.stderr, r
    return r.stdout.split()


def test_bash_completion_lists_what_the_cli_has(ls, build_dir):
    script = build_dir / "share" / "leakscope.bash"
    r = ls.cli("--completion", "bash", timeout=30)
    assert r.returncode == 0 and r.out == script.read_text(), "the build writes what the CLI says"
    r = subprocess.run(["bash", "-c", 'source "$1" && complete -p leakscope', "bash", str(script)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "-F _leakscope leakscope" in r.stdout, r
    subs = help_subcommands(ls)
    offered = complete(script, "")
    assert set(subs) <= set(offered), (subs, offered)
    assert complete(script, "to") == ["top"]
    assert {"--interval", "--once", "--frames"} <= set(complete(script, "top", "--"))
    formats = set(complete(script, "report", "x.lsc", "--format", ""))
    assert {"text", "json", "html"} <= formats, formats
    assert complete(script, "run", "--mode", "") == ["events", "aggregate"]
    assert_one_line_error(ls.cli("--completion", "fish", timeout=30), 2)


def test_man_page_renders(ls, build_dir):
    page = build_dir / "share" / "leakscope.1"
    r = ls.cli("--man", timeout=30)
    assert r.returncode == 0 and r.out == page.read_text()
    out = subprocess.run(["man", "-l", "-Tutf8", str(page)], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "MANWIDTH": "100"})
    assert out.returncode == 0 and not out.stderr, out.stderr
    warn = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(page)], capture_output=True, text=True, timeout=60)
    assert warn.returncode == 0 and not warn.stderr, warn.stderr
    text = re.sub(r".\x08", "", out.stdout)
    for sub in help_subcommands(ls):
        assert f"leakscope {sub} [OPTIONS]" in text, sub
    assert "--interval" in text and "example: leakscope top 4242" in text


def test_make_install(ls, build_dir, tmp_path, python_any):
    dest = tmp_path / "dest"
    r = subprocess.run(["make", "-C", str(SOURCE), "install", f"BUILD={build_dir}", f"DESTDIR={dest}",
                        "PREFIX=/usr/local"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    root = dest / "usr/local"
    files = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    pyver = "python%d.%d" % tuple(json.loads(subprocess.run(
        ["/usr/bin/python3", "-c", "import json, sys; print(json.dumps(sys.version_info[:2]))"],
        capture_output=True, text=True).stdout))
    site = f"lib/{pyver}/dist-packages"
    package = {f"{site}/leakscope/{p.name}" for p in (SOURCE / "pylib/leakscope").glob("*.py")} | \
        {f"{site}/leakscope-0.1.dist-info/{p.name}" for p in (SOURCE / "pylib/leakscope-0.1.dist-info").iterdir()}
    assert files == {"bin/leakscope", "lib/leakscope/libleakscope_agent.so",
                     "share/bash-completion/completions/leakscope", "share/man/man1/leakscope.1"} | package, files
    # Debian's python3 imports the installed package from the prefix's dist-packages, and it finds
    # the installed CLI on PATH.
    env = dict(os.environ, PYTHONPATH=str(root / site), PATH=f"{root / 'bin'}:{os.environ['PATH']}")
    env.pop("LEAKSCOPE_BUILD", None)
    r = subprocess.run(["/usr/bin/python3", "-c", "import leakscope, sys; print(leakscope.__file__)"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith(str(root / site)), r
    # The installed CLI finds the installed agent.
    write_script(tmp_path, "tiny.py", "x = [bytearray(1000) for _ in range(100)]\nprint('ok')\n")
    r = subprocess.run([str(root / "bin/leakscope"), "run", "-q", "-o", "tiny.lsc", "--", python_any, "tiny.py"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout == "ok\n" and (tmp_path / "tiny.lsc").stat().st_size > 64, r
