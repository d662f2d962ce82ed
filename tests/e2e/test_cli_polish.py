"""The command line's manners: --version, an example at the end of every subcommand's --help,
and the reading progress line, shown on a terminal only (cli/progress.h)."""
import os
import re
import select
import subprocess
import time

import pytest

from conftest import INTERPRETERS, SOURCE

PY = INTERPRETERS[-1][2]
PROGRESS = re.compile(r"leakscope: reading (\S+) (\d+)% \((\d+(?:\.\d)?) MiB of (\d+(?:\.\d)?) MiB\)")


def project_version():
    m = re.search(r"project\(leakscope VERSION (\d+\.\d+\.\d+)", (SOURCE / "CMakeLists.txt").read_text())
    assert m, "no VERSION in CMakeLists.txt's project()"
    return m.group(1)


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version(ls, flag):
    r = ls.cli(flag)
    assert r.returncode == 0 and r.err == "", r.describe()
    m = re.fullmatch(r"leakscope (\d+\.\d+\.\d+)( \([A-Za-z0-9._+-]+\))?\n", r.out)
    assert m, r.out
    assert m.group(1) == project_version()


def subcommands(ls):
    r = ls.cli("--help")
    assert r.returncode == 0, r.describe()
    lines = r.out.splitlines()
    assert "Subcommands:" in lines, r.out
    names = []
    for line in lines[lines.index("Subcommands:") + 1:]:
        m = re.match(r"  (\S+)\s", line)
        if not m:
            break
        names.append(m.group(1))
    return names


def test_every_subcommand_help_ends_with_an_example(ls):
    names = subcommands(ls)
    assert {"run", "report", "diff", "export"} <= set(names), names
    for name in names:
        r = ls.cli(name, "--help")
        assert r.returncode == 0, r.describe()
        last = r.out.rstrip("\n").splitlines()[-1]
        assert last.startswith(f"example: leakscope {name} "), (name, last)


def run_pty_stderr(ls, args, env):
    """Runs the CLI with stderr on a terminal (a pty) and stdout on a pipe: (status, out, err)."""
    master, slave = os.openpty()
    proc = subprocess.Popen([str(ls.exe), *args], cwd=str(ls.workdir), env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=slave, start_new_session=True)
    os.close(slave)
    out_fd = proc.stdout.fileno()
    got = {out_fd: b"", master: b""}
    open_fds = set(got)
    deadline = time.time() + 60
    try:
        while open_fds:
            assert time.time() < deadline, "leakscope did not finish in 60 s"
            ready, _, _ = select.select(list(open_fds), [], [], 1.0)
            for fd in ready:
                try:
                    data = os.read(fd, 65536)
                except OSError:  # EIO: the terminal's last writer is gone
                    data = b""
                if data:
                    got[fd] += data
                else:
                    open_fds.discard(fd)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
        proc.stdout.close()
    return proc.returncode, got[out_fd], got[master].decode("utf-8", "replace")


LEAKER = '''import time
KEEP = []
t0 = time.time()
while time.time() - t0 < 1.0:
    KEEP.extend(bytearray(100) for _ in range(200))
    time.sleep(0.01)
'''


@pytest.mark.parametrize("command", [
    ["report", "capture.lsc"],
    ["diff", "capture.lsc@0.3", "capture.lsc"],
    ["export", "capture.lsc", "--format", "collapsed"],
])
def test_progress_on_a_terminal_only(ls, command):
    (ls.workdir / "leaker.py").write_text(LEAKER)
    r = ls.cli("run", "--mode", "events", "--interval", "0.1", "-q", "-o", "capture.lsc", "--", PY, "leaker.py")
    assert r.returncode == 0, r.describe()
    size = (ls.workdir / "capture.lsc").stat().st_size
    now = dict(os.environ, LEAKSCOPE_PROGRESS_AFTER="0")

    status, out_tty, err_tty = run_pty_stderr(ls, command, now)
    assert status == 0, err_tty
    lines = PROGRESS.findall(err_tty)
    assert lines, repr(err_tty)
    assert all(name == "capture.lsc" and 0 <= int(pct) <= 100 and float(done) <= float(total)
               and abs(float(total) - size / 2**20) <= 0.05 for name, pct, done, total in lines), (size, lines)
    # Drawn in place and erased at the end: nothing but the line's \r redraws, then blanks.
    assert "\n" not in err_tty and re.fullmatch(r"(\r[^\r]*)*\r +\r", err_tty), repr(err_tty)

    piped = ls.cli(*command, env=now)
    assert piped.returncode == 0 and piped.err == "", piped.describe()
    assert piped.stdout == out_tty and out_tty, "stdout differs between a terminal and a pipe on stderr"

    # A capture read in a flash shows nothing by default (the line waits 0.5 s).
    default = {k: v for k, v in os.environ.items() if k != "LEAKSCOPE_PROGRESS_AFTER"}
    status, out_quick, err_quick = run_pty_stderr(ls, command, default)
    assert status == 0 and err_quick == "" and out_quick == out_tty, repr(err_quick)
