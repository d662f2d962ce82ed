"""leakscope from Python: track this process, read a capture (docs/python-api.md).

    with leakscope.track(output="app.lsc"):
        work()
    print(leakscope.report("app.lsc")["stacks"][0])
"""
import collections
import contextlib
import os
import time
import warnings

from leakscope._cli import LeakscopeError, run_json, control, agent_path
from leakscope._agent import attach_self

__all__ = ["track", "start", "stop", "flush", "mark", "Mark", "report", "tracking", "LeakscopeError"]

Mark = collections.namedtuple("Mark", "live_bytes peak_bytes")

_state = {"output": None, "t0": None}


def tracking():
    """The capture path while this process is tracked by start()/track(), else None."""
    return _state["output"]


def _create(output):
    # The file is ours before the agent opens it: O_EXCL, 0600, no symlink followed.
    path = os.path.abspath(output)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    os.close(fd)
    return path


def start(output=None, *, interval=1.0, native=False, sample_rate=0, mode="aggregate", retention=False):
    """Loads the agent into this process and starts writing a capture to `output` (a new file;
    default leakscope-python-PID.lsc in the working directory). Options mean what
    `leakscope attach`'s do. Raises LeakscopeError (and tracks nothing) when it cannot."""
    if _state["output"]:
        raise LeakscopeError(f"this process is already tracked (capture {_state['output']})")
    if not 0.01 <= float(interval) <= 86400:
        raise LeakscopeError("interval must be between 0.01 and 86400 seconds")
    if mode not in ("aggregate", "events"):
        raise LeakscopeError("mode must be aggregate or events")
    if int(sample_rate) < 0:
        raise LeakscopeError("sample_rate must be 0 or more")
    agent = agent_path()
    try:
        path = _create(output or f"leakscope-python-{os.getpid()}.lsc")
    except OSError as e:
        raise LeakscopeError(f"cannot create the capture {output}: {e.strerror}") from None
    if "\n" in path:
        os.unlink(path)
        raise LeakscopeError("the capture path cannot contain a newline")
    config = (f"output={path}\ninterval={float(interval):.6f}\nnative={1 if native else 0}\n"
              f"sample_rate={int(sample_rate)}\nmode={mode}\nretention={1 if retention else 0}\n")
    why, t0 = attach_self(agent, config)
    if why:
        if os.path.exists(path) and os.path.getsize(path) == 0:
            os.unlink(path)
        raise LeakscopeError(f"cannot track this process: {why}")
    # The capture's clock: its header's start time (CLOCK_REALTIME, offset 24) taken as tracking
    # began, moved onto our monotonic clock once, here.
    with open(path, "rb") as f:
        head = f.read(32)
    if len(head) == 32:
        start_ns = int.from_bytes(head[24:32], "little")
        t0 = time.monotonic() - (time.time_ns() - start_ns) / 1e9
    _state.update(output=path, t0=t0)
    return path


def elapsed():
    """Seconds since tracking began, on the capture's clock (at or a little past it): the
    `CAPTURE@SECONDS` that names the latest snapshot taken before now."""
    # +1 ms: never before the snapshot a flush that just answered wrote (a snapshot taken in
    # that millisecond instead is as good); far inside `diff`'s 10 ms slack past the end.
    return time.monotonic() - _state["t0"] + 0.001


def flush():
    """Writes a snapshot now (no retention walk) and returns the capture path."""
    reply = control("flush")
    if not reply.startswith("ok "):
        raise LeakscopeError(f"flush failed: {reply}")
    return reply[3:]


def mark():
    """Mark(live_bytes, peak_bytes): the bytes live now and the highest live total since the
    previous mark() (or since tracking began); a new window starts now. Exact (every event so
    far consumed), no snapshot written, well under a millisecond. Aggregate mode only."""
    reply = control("mark")
    parts = reply.split()
    if len(parts) != 3 or parts[0] != "ok" or not (parts[1].isdigit() and parts[2].isdigit()):
        raise LeakscopeError(f"mark failed: {reply}")
    return Mark(int(parts[1]), int(parts[2]))


def stop():
    """Stops tracking: the capture is complete, the process runs on at its old speed."""
    if not _state["output"]:
        raise LeakscopeError("this process is not tracked by leakscope.start()")
    reply = control("detach")
    _state.update(output=None, t0=None)
    if not reply.startswith("ok "):
        raise LeakscopeError(f"detach failed: {reply}")
    return reply[3:]


@contextlib.contextmanager
def track(output=None, **options):
    """Tracks the block into `output`. If tracking cannot start, warns and runs the block
    untracked: watching must never break the program."""
    try:
        path = start(output, **options)
    except LeakscopeError as e:
        warnings.warn(str(e), RuntimeWarning, stacklevel=3)
        path = None
    try:
        yield path
    finally:
        if path:
            try:
                stop()
            except LeakscopeError as e:
                warnings.warn(str(e), RuntimeWarning, stacklevel=3)


def report(path, *args):
    """The JSON report of a capture (docs/report-json.md); extra CLI arguments may follow."""
    return run_json(["report", os.fspath(path), *args])
