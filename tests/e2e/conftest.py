"""Shared helpers for the leakscope end-to-end suite.

Every test runs real programs under the real `leakscope` binary (found through
LEAKSCOPE_BUILD, default /work/main/build) and asserts on `leakscope report --format json`.
Nothing goes through a shell; every child process has a timeout and runs in the test's own
tmp_path.
"""
import json
import os
import select
import time
import signal
import struct
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))
from testlib import frame_str, marker_line  # noqa: E402,F401  (re-exported to the test modules)

BUILD = Path(os.environ.get("LEAKSCOPE_BUILD", "/work/main/build"))
SOURCE = Path(os.environ.get("LEAKSCOPE_SOURCE", str(Path(__file__).resolve().parents[2])))
E2E_DIR = Path(__file__).resolve().parent
PROGRAMS_DIR = E2E_DIR / "programs"

RUN_TIMEOUT = 120      # seconds for one `leakscope run`
REPORT_TIMEOUT = 60    # seconds for one `leakscope report`

# (test id, (major, minor), real interpreter binary -- never a pyenv shim)
INTERPRETERS = [
    ("py3.9", (3, 9), "/root/.pyenv/versions/3.9.18/bin/python3.9"),
    ("py3.10", (3, 10), "/root/.pyenv/versions/3.10.13/bin/python3.10"),
    ("py3.11", (3, 11), "/root/.pyenv/versions/3.11.7/bin/python3.11"),
    ("py3.12", (3, 12), "/root/.pyenv/versions/3.12.1/bin/python3.12"),
    ("py3.13", (3, 13), "/root/.pyenv/versions/3.13.0/bin/python3.13"),
    ("debian3.11", (3, 11), "/usr/bin/python3.11"),
]

CHUNK_MAGIC = 0x4843534C  # "LSCH"
HEADER_SIZE = 64


# --------------------------------------------------------------------------- processes

@dataclass
class Result:
    args: List[str]
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def out(self) -> str:
        return self.stdout.decode("utf-8", "replace")

    @property
    def err(self) -> str:
        return self.stderr.decode("utf-8", "replace")

    def describe(self) -> str:
        return (f"command {self.args!r} exited {self.returncode}\n"
                f"--- stdout (first 2000 chars)\n{self.out[:2000]}\n"
                f"--- stderr (first 4000 chars)\n{self.err[:4000]}")


def run_process(args: Sequence[str], cwd: Path, timeout: float, env: Optional[Dict[str, str]] = None,
                preexec_fn=None) -> Result:
    """Run argv (no shell) in its own session; on timeout kill that process group and fail."""
    args = [str(a) for a in args]
    proc = subprocess.Popen(args, cwd=str(cwd), env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True, preexec_fn=preexec_fn)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the group we created, by its id
        except ProcessLookupError:
            pass
        out, err = proc.communicate()
        pytest.fail(f"timed out after {timeout}s: {args!r}\nstdout: {out[-2000:]!r}\nstderr: {err[-2000:]!r}")
    return Result(args, proc.returncode, out, err)


class Leakscope:
    """Runs the leakscope binary in a per-test working directory."""

    def __init__(self, build: Path, workdir: Path):
        self.build = build
        self.exe = build / "leakscope"
        self.workdir = workdir

    def cli(self, *args, timeout: float = RUN_TIMEOUT, env=None, prefix: Sequence[str] = (),
            preexec_fn=None) -> Result:
        return run_process([*prefix, self.exe, *args], self.workdir, timeout, env=env, preexec_fn=preexec_fn)

    def run(self, command: Sequence[str], output: Optional[str] = "capture.lsc", native: bool = False,
            quiet: bool = True, timeout: float = RUN_TIMEOUT, env=None, prefix: Sequence[str] = (),
            mode: Optional[str] = None) -> Result:
        args = ["run"]
        if mode is not None:
            args += ["--mode", mode]
        if output is not None:
            args += ["-o", str(output)]
        if native:
            args.append("--native")
        if quiet:
            args.append("-q")
        args += ["--", *[str(c) for c in command]]
        return self.cli(*args, timeout=timeout, env=env, prefix=prefix)

    def plain(self, command: Sequence[str], timeout: float = RUN_TIMEOUT, env=None) -> Result:
        return run_process(command, self.workdir, timeout, env=env)

    def report_raw(self, capture, fmt: str = "json", limit: Optional[int] = None,
                   timeout: float = REPORT_TIMEOUT) -> Result:
        args = ["report", str(capture), "--format", fmt]
        if limit is not None:
            args += ["--limit", str(limit)]
        return self.cli(*args, timeout=timeout)

    def report(self, capture="capture.lsc", limit: Optional[int] = None) -> dict:
        r = self.report_raw(capture, limit=limit)
        assert r.returncode == 0, "report failed:\n" + r.describe()
        try:
            doc = json.loads(r.stdout)
        except ValueError as e:
            pytest.fail(f"report output is not JSON ({e}):\n{r.out[:2000]}")
        assert doc.get("schema") == "leakscope.report/2", doc.get("schema")
        for key in ("capture", "totals", "stacks", "warnings"):
            assert key in doc, f"report has no {key!r}"
        return doc


@pytest.fixture(scope="session")
def build_dir() -> Path:
    exe = BUILD / "leakscope"
    agent = BUILD / "libleakscope_agent.so"
    if not exe.is_file() or not agent.is_file():
        pytest.fail(f"leakscope is not built in {BUILD} (set LEAKSCOPE_BUILD); "
                    f"missing {exe if not exe.is_file() else agent}")
    return BUILD


@pytest.fixture
def ls(build_dir, tmp_path) -> Leakscope:
    return Leakscope(build_dir, tmp_path)


def e2e_program(build_dir: Path, name: str) -> Path:
    exe = build_dir / f"e2e_{name}"
    if not exe.is_file():
        pytest.fail(f"{exe} is missing: re-run `cmake -S {SOURCE} -B {build_dir} -G Ninja` and rebuild "
                    f"(tests/e2e/programs/{name}.cpp)")
    return exe


# --------------------------------------------------------------------------- interpreters

@dataclass
class Interpreter:
    name: str
    version_info: tuple
    path: str
    _cache: dict = field(default_factory=dict)

    def query(self, code: str) -> str:
        if code not in self._cache:
            r = subprocess.run([self.path, "-c", code], capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
            assert r.returncode == 0, f"{self.path} -c {code!r} failed: {r.stderr!r}"
            self._cache[code] = r.stdout.decode().strip()
        return self._cache[code]

    @property
    def version(self) -> str:
        return self.query("import platform; print(platform.python_version())")

    @property
    def include_dir(self) -> str:
        return self.query('import sysconfig; print(sysconfig.get_paths()["include"])')

    @property
    def ext_suffix(self) -> str:
        return self.query('import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')


_INTERP_OBJECTS: Dict[str, Interpreter] = {}


def pytest_configure(config):
    config.addinivalue_line("markers", "pythons(*ids): run the test only on these interpreter ids")
    config.addinivalue_line("markers", "xfail_python(reason, versions=[(3, 12), ...]): strict xfail on those "
                            "interpreter versions (a leakscope bug that shows only there)")


def pytest_generate_tests(metafunc):
    """Parametrize every test that takes `python` over the known interpreters."""
    if "python" not in metafunc.fixturenames:
        return
    only = metafunc.definition.get_closest_marker("pythons")
    xf = metafunc.definition.get_closest_marker("xfail_python")
    params = []
    for name, vi, path in INTERPRETERS:
        if only and name not in only.args:
            continue
        marks = []
        if xf and vi in [tuple(v) for v in xf.kwargs["versions"]]:
            marks.append(pytest.mark.xfail(reason=xf.kwargs["reason"], strict=True))
        params.append(pytest.param(name, id=name, marks=marks))
    metafunc.parametrize("python", params, indirect=True)


@pytest.fixture
def python(request) -> Interpreter:
    name = request.param
    _, vi, path = next(i for i in INTERPRETERS if i[0] == name)
    if not os.access(path, os.X_OK):
        pytest.skip(f"interpreter {name} not installed at {path}")
    if name not in _INTERP_OBJECTS:
        _INTERP_OBJECTS[name] = Interpreter(name, vi, path)
    return _INTERP_OBJECTS[name]


# --------------------------------------------------------------------------- sources and reports

def write_script(directory: Path, name: str, text: str) -> Path:
    p = directory / name
    p.write_text(text)
    return p


def innermost(stack: dict) -> dict:
    assert stack["frames"], f"stack without frames: {stack}"
    return stack["frames"][0]


def is_line(frame: dict, filename: str, line: int) -> bool:
    """A frame at `line` of a file whose base name is `filename`."""
    f = frame.get("file")
    return bool(f) and Path(f).name == filename and frame.get("line") == line


def fmt_stacks(doc: dict, n: int = 8) -> str:
    rows = []
    for s in doc["stacks"][:n]:
        frames = ", ".join(frame_str(f) for f in s["frames"][:10])
        rows.append(f"  {s['layer']:9} {s['bytes']:>11} B {s['count']:>8} x  {frames}")
    return "top stacks:\n" + "\n".join(rows) + f"\nwarnings: {doc['warnings']}"


def stacks_with_line(doc: dict, filename: str, line: int, innermost_only: bool = False) -> List[dict]:
    out = []
    for s in doc["stacks"]:
        frames = s["frames"][:1] if innermost_only else s["frames"]
        if any(is_line(f, filename, line) for f in frames):
            out.append(s)
    return out


def assert_one_line_error(r: Result, expected_code: Optional[int] = None):
    assert r.returncode > 0, "expected a non-zero exit (not a signal):\n" + r.describe()
    if expected_code is not None:
        assert r.returncode == expected_code, r.describe()
    lines = r.err.splitlines()
    assert len(lines) == 1, "expected exactly one line on stderr:\n" + r.describe()
    assert lines[0].startswith("leakscope:"), r.describe()


def chunk_offsets(data: bytes) -> List[tuple]:
    """(offset, compressed size, raw size, seq) of every complete chunk, per capture/format.md."""
    assert data[:8] == b"LKSCOPE\0", data[:8]
    off, chunks = HEADER_SIZE, []
    while off + 16 <= len(data):
        magic, csize, rsize, seq = struct.unpack_from("<IIII", data, off)
        assert magic == CHUNK_MAGIC, f"bad chunk magic at {off:#x}"
        if off + 16 + csize > len(data):
            break
        chunks.append((off, csize, rsize, seq))
        off += 16 + csize
    return chunks


@pytest.fixture(scope="session")
def python_any() -> str:
    """Path of one available interpreter, for tests that only need some Python."""
    for _, _, path in INTERPRETERS:
        if os.access(path, os.X_OK):
            return path
    pytest.skip("no Python interpreter available")


# --------------------------------------------------------------------------- long-running targets

def kill_group(proc: subprocess.Popen):
    """SIGKILL the session a test started (its own process group) and reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.communicate()


class Target:
    """A program started in the test's directory, in its own session."""

    def __init__(self, argv, cwd: Path):
        self.cwd = cwd
        self.proc = subprocess.Popen([str(a) for a in argv], cwd=str(cwd), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        self.out = b""
        deadline = time.time() + 30
        while b"ready\n" not in self.out:
            r, _, _ = select.select([self.proc.stdout], [], [], max(0.0, deadline - time.time()))
            if not r:
                self.kill()
                pytest.fail(f"{argv!r} did not get ready")
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                err = self.proc.stderr.read().decode(errors="replace")
                pytest.fail(f"{argv!r} exited before it was ready: {err[-2000:]}")
            self.out += chunk
        self.pid = self.proc.pid

    def touch(self, name):
        (self.cwd / name).write_text("")

    def finish(self, timeout=30):
        self.touch("stop")
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail("the target did not end after `stop` (deadlocked?)")
        self.out += out
        return self.proc.returncode, self.out.decode(), err.decode(errors="replace")

    def kill(self):
        kill_group(self.proc)


@pytest.fixture
def targets():
    started = []
    yield started
    for t in started:
        if t.proc.poll() is None:
            t.kill()
