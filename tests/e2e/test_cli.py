"""Command line errors, capture file safety, and a capture that cannot be written."""
import os
import re
import shutil
import stat

import pytest

from conftest import assert_one_line_error, write_script

USAGE_EXIT = 2


@pytest.mark.parametrize("args", [
    ["run", "--bogus", "--", "/bin/true"],
    ["report", "--bogus", "x.lsc"],
    ["--bogus"],
    ["frobnicate"],
    ["report", "x.lsc", "--format", "xml"],
    ["report", "x.lsc", "--limit", "many"],
], ids=["run-unknown-option", "report-unknown-option", "global-unknown-option", "unknown-subcommand",
        "bad-format", "bad-limit"])
def test_unknown_option(ls, args):
    r = ls.cli(*args, timeout=30)
    assert_one_line_error(r, USAGE_EXIT)
    assert r.stdout == b""


@pytest.mark.parametrize("args", [["run"], ["run", "--"], ["run", "-o", "x.lsc"], ["run", "--native", "-q", "--"]],
                         ids=["bare", "dashdash", "output-only", "flags-only"])
def test_run_without_command(ls, args):
    r = ls.cli(*args, timeout=30)
    assert_one_line_error(r, USAGE_EXIT)
    assert not (ls.workdir / "x.lsc").exists()
    assert list(ls.workdir.iterdir()) == [], "run without a command must not create a capture"


@pytest.mark.parametrize("command", ["leakscope-e2e-no-such-command", "/nonexistent/dir/prog"])
def test_nonexistent_command(ls, command):
    r = ls.run([command, "arg"], timeout=30)
    assert_one_line_error(r, 127)
    assert command in r.err


def test_non_executable_command(ls):
    script = write_script(ls.workdir, "not_exec.sh", "#!/bin/sh\necho hi\n")
    os.chmod(script, 0o644)
    r = ls.run([f"./{script.name}"], output="c.lsc", timeout=30)
    assert_one_line_error(r, 126)


def test_existing_output_is_refused(ls, python_any):
    target = ls.workdir / "precious.lsc"
    target.write_bytes(b"do not touch\n")
    os.utime(target, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    before = os.stat(target)
    marker = ls.workdir / "ran.txt"
    r = ls.run([python_any, "-c", f"open({str(marker)!r}, 'w').write('x')"], output=target.name, timeout=30)
    assert_one_line_error(r, USAGE_EXIT)
    assert target.read_bytes() == b"do not touch\n"
    after = os.stat(target)
    assert (after.st_mtime_ns, after.st_size, after.st_mode, after.st_ino) == \
           (before.st_mtime_ns, before.st_size, before.st_mode, before.st_ino)
    assert not marker.exists(), "the command ran although the capture was refused"


def test_existing_symlink_output_is_refused(ls, python_any):
    """-o naming a symlink (even a dangling one) must not write through it."""
    victim = ls.workdir / "victim.txt"
    link = ls.workdir / "link.lsc"
    link.symlink_to(victim)
    r = ls.run([python_any, "-c", "pass"], output=link.name, timeout=30)
    assert r.returncode != 0, r.describe()
    assert not victim.exists(), "leakscope followed a symlink given as -o"


def test_capture_file_mode_is_0600(ls, python_any):
    r = ls.cli("run", "-q", "-o", "explicit.lsc", "--", python_any, "-c", "x = [1] * 1000",
               timeout=60, preexec_fn=lambda: os.umask(0))
    assert r.returncode == 0, r.describe()
    assert stat.S_IMODE(os.stat(ls.workdir / "explicit.lsc").st_mode) == 0o600
    ls.report("explicit.lsc")


def test_default_capture_name_and_mode(ls, python_any):
    r = ls.cli("run", "--", python_any, "-c", "print('hello')", timeout=60, preexec_fn=lambda: os.umask(0))
    assert r.returncode == 0, r.describe()
    assert r.out == "hello\n"
    files = [p.name for p in ls.workdir.iterdir()]
    base = os.path.basename(python_any)
    assert len(files) == 1 and re.fullmatch(rf"leakscope-{re.escape(base)}-\d+\.lsc", files[0]), files
    assert stat.S_IMODE(os.stat(ls.workdir / files[0]).st_mode) == 0o600
    assert files[0] in r.err, "without -q, run says where the capture went"
    assert ls.report(files[0])["capture"]["argv"] == [python_any, "-c", "print('hello')"]


DISK_SCRIPT = '''\
kept = []
for i in range(200_000):
    s = str({"i": i})
    kept.append((i, "req-%d" % i))
print("kept", len(kept))
print("done")
'''


@pytest.mark.skipif(shutil.which("prlimit") is None, reason="prlimit (util-linux) is not installed")
@pytest.mark.pythons("py3.12", "debian3.11")
@pytest.mark.parametrize("mode,limit", [("events", "200000"), ("aggregate", "4000")])
def test_capture_write_fails_program_runs_on(ls, python, mode, limit):
    """RLIMIT_FSIZE makes the capture's write(2) fail with EFBIG: the program must not notice."""
    script = write_script(ls.workdir, "busy.py", DISK_SCRIPT)
    plain = ls.plain([python.path, script.name])
    assert plain.returncode == 0
    r = ls.run([python.path, script.name], output="full.lsc", prefix=[shutil.which("prlimit"), f"--fsize={limit}"],
               mode=mode)
    assert r.returncode == 0, "the target must exit 0 (no SIGXFSZ, no error)\n" + r.describe()
    assert r.stdout == plain.stdout == b"kept 200000\ndone\n"
    assert os.path.getsize(ls.workdir / "full.lsc") <= 200_000
    lines = [l for l in r.err.splitlines() if l.startswith("leakscope:")]
    assert any(re.search(r"capture", l) and re.search(r"(cannot|could not|can't|failed|unable)", l) and
               re.search(r"writ", l) for l in lines), "no line saying the capture could not be written\n" + r.describe()
    # Everything else on stderr comes from leakscope (the program itself printed nothing there).
    assert all(l.startswith("leakscope:") for l in r.err.splitlines()), r.describe()


@pytest.mark.skipif(shutil.which("prlimit") is None, reason="prlimit (util-linux) is not installed")
def test_capture_write_failure_not_announced_as_written(ls, python_any):
    script = write_script(ls.workdir, "busy.py", DISK_SCRIPT)
    r = ls.run([python_any, script.name], output="full.lsc", quiet=False,
               prefix=[shutil.which("prlimit"), "--fsize=4000"])
    assert r.returncode == 0, r.describe()
    assert any(re.search(r"cannot write|could not be written", l) for l in r.err.splitlines()), r.describe()
    assert "capture written to" not in r.err, r.describe()


CLOSER_SCRIPT = '''
import os, time
keep = []
for i in range(20000):
    keep.append(str(i))
os.closerange(3, 4096)           # a daemon closing every descriptor, the capture's included
fd = os.open("victim.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
os.write(fd, b"mine\\n")
for i in range(300000):
    keep.append(str(i))
time.sleep(1.3)                  # the writer flushes at least once a second
os.close(fd)
print(open("victim.txt", "rb").read())
'''


def test_program_closing_all_fds_never_gets_capture_bytes(ls, python_any):
    """A program that closes the capture's descriptor and reuses the number is not written to."""
    script = write_script(ls.workdir, "closer.py", CLOSER_SCRIPT)
    plain = ls.plain([python_any, script.name])
    r = ls.run([python_any, script.name], output="closer.lsc", quiet=True)
    assert r.returncode == 0, r.describe()
    assert r.out == plain.out == "b'mine\\n'\n", r.describe()
    assert (ls.workdir / "victim.txt").read_bytes() == b"mine\n"
    assert any(l.startswith("leakscope:") and "descriptor" in l for l in r.err.splitlines()), r.describe()
