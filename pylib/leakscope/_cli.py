"""The leakscope executable, its agent, and the agent's control socket, seen from Python."""
import json
import os
import shutil
import socket
import subprocess


class LeakscopeError(Exception):
    """leakscope could not do what was asked; the message is one line saying why."""


def build_dir():
    """The directory holding the `leakscope` executable: $LEAKSCOPE_BUILD, else the one on PATH."""
    d = os.environ.get("LEAKSCOPE_BUILD")
    if d:
        return os.path.abspath(d)
    exe = shutil.which("leakscope")
    if exe:
        return os.path.dirname(os.path.realpath(exe))
    raise LeakscopeError("cannot find leakscope: set LEAKSCOPE_BUILD to the build directory or put leakscope on PATH")


def executable():
    exe = os.path.join(build_dir(), "leakscope")
    if not os.access(exe, os.X_OK):
        raise LeakscopeError(f"{exe} is not an executable (LEAKSCOPE_BUILD points at a build directory)")
    return exe


def agent_path():
    """Where the CLI looks too (cli/main.cpp, find_agent): next to it, or ../lib/leakscope."""
    d = build_dir()
    for cand in (os.path.join(d, "libleakscope_agent.so"), os.path.join(d, "..", "lib", "leakscope", "libleakscope_agent.so")):
        if os.access(cand, os.R_OK):
            return os.path.realpath(cand)
    raise LeakscopeError(f"cannot find libleakscope_agent.so next to {d}/leakscope")


def run(args, timeout=300):
    """Runs `leakscope ARGS...` (a list, no shell); returns stdout, raises with its error line."""
    p = subprocess.run([executable(), *args], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
        raise LeakscopeError(lines[-1] if lines else f"leakscope {args[0]} exited with status {p.returncode}")
    return p.stdout


def run_json(args, timeout=300):
    return json.loads(run([*args, "--format", "json"], timeout=timeout))


def control(request, pid=None, timeout=30.0):
    """Sends one request ("flush", "detach", "status", ...) on the agent's abstract socket
    "\\0leakscope/<pid>" and returns its reply line; raises when no agent answers."""
    pid = os.getpid() if pid is None else pid
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as s:
        s.settimeout(timeout)
        try:
            s.connect(f"\0leakscope/{pid}")
            s.sendall(request.encode() + b"\n")
            chunks = []
            while True:
                b = s.recv(4096)
                if not b:
                    break
                chunks.append(b)
        except OSError as e:
            raise LeakscopeError(f"no leakscope agent answers in process {pid} ({e})") from None
    return b"".join(chunks).decode(errors="replace").strip()
