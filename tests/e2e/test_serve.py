"""`leakscope run --serve` (docs/serve.md): one leaking Python program under leakscope, looked
at through its endpoints by real clients: Python's urllib, `go tool pprof`, a raw socket, and
the real Prometheus (Debian's) with the shipped contrib/prometheus/leakscope.yml."""
import email
import gzip
import http.server
import json
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from conftest import PROGRAMS_DIR, SOURCE, Target, assert_one_line_error, kill_group, write_script

sys.path.insert(0, str(Path(__file__).parent))
from test_export_pprof import Pprof  # noqa: E402  (the offline `go tool pprof` runner)

PROGRAM = '''
import os, sys, time
cache = []
def grow_cache():
    cache.append(bytearray(20000))  # SERVE-LEAK
print("ready", flush=True)
start = time.monotonic()
while not os.path.exists("stop") and time.monotonic() - start < 120:
    grow_cache()
    time.sleep(0.02)
print("stopped", flush=True)
sys.exit(3)
'''
LEAK_FN = "grow_cache"
PROMETHEUS = shutil.which("prometheus")


class Served:
    """The program under `leakscope run --serve 127.0.0.1:0` and how to reach it."""

    def __init__(self, leakscope: Path, workdir: Path, extra=(), program=PROGRAM, settle=3.0):
        script = write_script(workdir, "svc.py", program)
        self.workdir = workdir
        self.token_file = workdir / "scrape.token"  # created by leakscope (absent before)
        self.proc = subprocess.Popen(
            [str(leakscope), "run", "--serve", "127.0.0.1:0", "--token-file", str(self.token_file), "-o", "svc.lsc",
             *extra, "--", sys.executable, script.name],
            cwd=workdir, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        err = b""
        deadline = time.monotonic() + 30
        while not re.search(rb"http://127\.0\.0\.1:(\d+)/", err):
            r, _, _ = select.select([self.proc.stderr], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(self.proc.stderr.fileno(), 4096) if r else b""
            if not chunk:
                self.kill()
                pytest.fail(f"leakscope run --serve did not say where it serves: {err!r}")
            err += chunk
        self.port = int(re.search(rb"http://127\.0\.0\.1:(\d+)/", err).group(1))
        self.err = err
        self.token = self.token_file.read_text().strip()
        assert self.proc.stdout.readline() == b"ready\n"
        self.base = f"http://127.0.0.1:{self.port}"
        time.sleep(settle)  # PROGRAM: ~3 MB leaked, grow_cache dominates what the interpreter's start left live

    def get(self, path: str, token=None, timeout=60):
        """(status, body bytes); token None: the right one, "": no Authorization header."""
        req = urllib.request.Request(self.base + path)
        token = self.token if token is None else token
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read(), r.headers.get("Content-Type")
        except urllib.error.HTTPError as e:
            return e.code, e.read(), e.headers.get("Content-Type")

    def kill(self):
        kill_group(self.proc)


class PyroscopeStub(http.server.BaseHTTPRequestHandler):
    """Records every POST (path with query, headers, body) like Pyroscope's /ingest, answers 200."""
    received = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        PyroscopeStub.received.append((self.path, dict(self.headers), body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def stub():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), PyroscopeStub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


@pytest.fixture(scope="module")
def served(build_dir, tmp_path_factory, stub):
    s = Served(build_dir / "leakscope", tmp_path_factory.mktemp("serve"),
               ["--push", f"http://127.0.0.1:{stub.server_address[1]}/base/", "--push-interval", "1"])
    yield s
    if s.proc.poll() is None:
        s.kill()


def parse_prometheus(text: str):
    """{(name, frozenset(labels)): value} from text exposition format 0.0.4; fails on a bad line."""
    samples, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
            continue
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*",?)*)\})? (\S+)', line)
        assert m, f"not Prometheus text: {line!r}"
        labels = frozenset(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"', m.group(2) or ""))
        assert m.group(1) in types, f"{m.group(1)} has no # TYPE line"
        samples[(m.group(1), labels)] = float(m.group(3))
    return samples, types


def test_token_required(served):
    assert served.token_file.stat().st_mode & 0o777 == 0o600
    assert len(served.token) == 64
    for token in ("", "wrong-" + served.token[6:], served.token + "x", served.token[:-1]):
        status, body, _ = served.get("/metrics", token=token)
        assert status == 401, (token, status, body)
    status, _, ctype = served.get("/metrics")
    assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
    assert served.get("/nothing-here")[0] == 404


def test_heap_read_by_go_pprof(served, tmp_path):
    if not shutil.which("go"):
        pytest.skip("`go` is not installed (Debian golang-go)")
    pprof = Pprof(tmp_path / "go")
    for endpoint, default in (("heap", "inuse_space"), ("allocs", "alloc_space")):
        status, body, _ = served.get(f"/debug/pprof/{endpoint}")
        assert status == 200 and body[:2] == b"\x1f\x8b", (status, body[:200])
        path = tmp_path / f"{endpoint}.pb.gz"
        path.write_bytes(body)
        rows, out = pprof.top(path, "inuse_space")
        assert rows[0][1] == LEAK_FN and rows[0][0] > 0, out
        # the default sample type (what `go tool pprof` shows without -sample_index)
        assert f"Type: {default}" in pprof("-top", "-nodecount=3", str(path)), endpoint
    status, body, ctype = served.get("/debug/pprof/heap?debug=1")
    assert status == 200 and ctype.startswith("text/plain")
    first = body.decode().splitlines()[0]  # collapsed stacks, biggest first
    assert re.search(rf";{LEAK_FN} \(\S*/svc\.py:5\) \d+$", first), first


def test_delta_heap(served, tmp_path):
    assert served.get("/debug/pprof/delta_heap?seconds=0")[0] == 400
    assert served.get("/debug/pprof/delta_heap?seconds=301")[0] == 400
    assert served.get("/debug/pprof/delta_heap?seconds=1x")[0] == 400
    if not shutil.which("go"):
        pytest.skip("`go` is not installed (Debian golang-go)")
    t0 = time.monotonic()
    status, body, _ = served.get("/debug/pprof/delta_heap?seconds=1")
    assert status == 200, body[:300]
    assert time.monotonic() - t0 >= 1.0
    path = tmp_path / "delta.pb.gz"
    path.write_bytes(body)
    rows, out = Pprof(tmp_path / "go").top(path, "inuse_space")
    # about 1 MB/s grows in grow_cache; the growth over ~1 s, not what was live before it
    assert rows[0][1] == LEAK_FN and 200_000 < rows[0][0] < 3_000_000, out


def test_metrics_grow(served):
    first, types = parse_prometheus(served.get("/metrics")[1].decode())
    time.sleep(1.0)
    second, _ = parse_prometheus(served.get("/metrics")[1].decode())
    key = ("leakscope_live_bytes", frozenset({("layer", "python")}))
    assert second[key] - first[key] > 300_000, (first[key], second[key])
    assert second[("leakscope_rss_bytes", frozenset())] > 10_000_000
    verdicts = [v for (n, _), v in second.items() if n == "leakscope_verdict"]
    assert sorted(verdicts) == [0, 0, 1]
    # The doc's metric table is the code's (report/metrics.cpp): every name and type, no more.
    doc = (SOURCE / "docs" / "serve.md").read_text()
    documented = dict(re.findall(r"^\| `(leakscope_[a-z_]+)` \|[^|]*\| (gauge|counter) \|", doc, re.M))
    assert documented == types, (documented, types)


PHASES = '''
import os, sys, time
keep = []
def phase_one():
    keep.append(bytearray(3_000_000))  # PHASE-ONE
def phase_two():
    keep.extend(bytearray(700_000) for _ in range(3))  # PHASE-TWO
def wait_for(name):
    while not os.path.exists(name):
        time.sleep(0.05)
phase_one()
print("ready", flush=True)
wait_for("two")
phase_two()
print("two", flush=True)
wait_for("stop")
'''


def big_stacks(collapsed: str) -> dict:
    """{stack: bytes} of the collapsed lines over 1 MB."""
    out = {}
    for line in collapsed.splitlines():
        stack, _, value = line.rpartition(" ")
        if int(value) > 1_000_000:
            out[stack] = int(value)
    return out


def test_kept_symbols_read_as_a_fresh_read(build_dir, tmp_path):
    """The companion keeps each stack's symbols between requests (report/sites.h, SymbolCache):
    after the program builds new stacks, a request still reads exactly what a fresh `leakscope
    export` of the capture reads, new stacks included."""
    s = Served(build_dir / "leakscope", tmp_path, program=PHASES, settle=0.5)
    try:
        def both():
            status, body, _ = s.get("/debug/pprof/heap?debug=1")
            assert status == 200, body[:300]
            out = tmp_path / f"fresh{time.monotonic_ns()}.txt"
            subprocess.run([str(build_dir / "leakscope"), "export", "svc.lsc", "--format", "collapsed", "-o", str(out)],
                           cwd=tmp_path, check=True, timeout=60)
            return big_stacks(body.decode()), big_stacks(out.read_text())

        served, fresh = both()
        assert served == fresh and any("phase_one (" in k and "svc.py:5)" in k for k in served), (served, fresh)
        (tmp_path / "two").touch()
        assert s.proc.stdout.readline() == b"two\n"
        served, fresh = both()
        assert served == fresh, (served, fresh)
        two = [v for k, v in served.items() if re.search(r";phase_two \(\S*svc\.py:7\)", k)]
        assert two and sum(two) > 2_000_000, served
        (tmp_path / "stop").touch()
        assert s.proc.wait(timeout=30) == 0
    finally:
        s.kill()


def raw_exchange(port: int, data: bytes) -> bytes:
    """Sends `data`, returns what comes back before the server closes or 5 s pass."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before we finished: fine
        got = b""
        try:
            while chunk := s.recv(65536):
                got += chunk
        except (ConnectionResetError, socket.timeout):
            pass
        return got


def test_malformed_requests_refused(served):
    big = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n"
    many = b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(2000)) + b"\r\n"
    long_uri = b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    for data in (b"\x00\xff\xfegarbage\r\n\r\n", b"GET\r\n\r\n", big, many, long_uri,
                 b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\nxx"):
        reply = raw_exchange(served.port, data)
        status = re.match(rb"HTTP/1\.[01] (\d{3})", reply)
        # a 4xx, or closed without an answer; never a 200 nor a crash
        assert reply == b"" or (status and 400 <= int(status.group(1)) < 500), (data[:40], reply[:200])
        assert served.proc.poll() is None
    # a client that hangs up before the answer (the server then writes to a closed socket)
    ask = f"GET /debug/pprof/heap HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {served.token}\r\n\r\n".encode()
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", served.port), timeout=5) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
            s.sendall(ask)
        time.sleep(0.5)
        assert served.proc.poll() is None, "leakscope died when a client hung up"
    assert served.get("/metrics")[0] == 200  # still serving


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(PROMETHEUS is None, reason="Debian prometheus is not installed (scripts/install-deps.sh)")
def test_real_prometheus_scrapes(served, tmp_path):
    config = (SOURCE / "contrib" / "prometheus" / "leakscope.yml").read_text()
    config = config.replace("/path/to/leakscope.token", str(served.token_file))
    config = config.replace("127.0.0.1:9464", f"127.0.0.1:{served.port}")
    (tmp_path / "prometheus.yml").write_text(config)
    web = free_port()
    prom = subprocess.Popen([PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{web}"],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "prom.log", "wb"))
    try:
        query = urllib.parse.quote('leakscope_live_bytes{layer="python"}[60s]')
        values, deadline = [], time.monotonic() + 25
        while time.monotonic() < deadline:
            time.sleep(1)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{web}/api/v1/query?query={query}", timeout=5) as r:
                    doc = json.load(r)
            except (urllib.error.URLError, ConnectionError):
                continue  # not up yet
            result = doc["data"]["result"]
            values = [float(v) for _, v in result[0]["values"]] if result else []
            if len(values) >= 8:
                break
        with urllib.request.urlopen(f"http://127.0.0.1:{web}/api/v1/targets", timeout=5) as r:
            targets = json.load(r)["data"]["activeTargets"]
        assert values and len(values) >= 5, (targets, (tmp_path / "prom.log").read_text()[-2000:])
        assert targets[0]["health"] == "up", targets
        assert values[-1] - values[0] > 1_000_000 and values == sorted(values), values
    finally:
        prom.terminate()
        prom.wait(timeout=30)


def test_push_to_pyroscope_ingest(served, tmp_path):
    """--push: multipart POSTs to PREFIX/ingest with Pyroscope's query parameters, each holding a
    pprof profile `go tool pprof` reads, naming the leaking function first."""
    deadline = time.monotonic() + 10
    while len(PyroscopeStub.received) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    got = list(PyroscopeStub.received)
    assert len(got) >= 3, got
    path, headers, body = got[-1]
    url = urllib.parse.urlsplit(path)
    q = dict(urllib.parse.parse_qsl(url.query))
    assert url.path == "/base/ingest" and q["format"] == "pprof" and q["name"] == "leakscope.python3.memory", path
    assert int(q["from"]) <= int(q["until"]) <= time.time() + 1, q
    msg = email.message_from_bytes(b"Content-Type: " + headers["Content-Type"].encode() + b"\r\n\r\n" + body)
    parts = {p.get_param("name", header="content-disposition"): p.get_payload(decode=True) for p in msg.get_payload()}
    profile = parts["profile"]
    assert profile[:2] == b"\x1f\x8b" and gzip.decompress(profile), parts.keys()
    if not shutil.which("go"):
        pytest.skip("`go` is not installed (Debian golang-go)")
    (tmp_path / "pushed.pb.gz").write_bytes(profile)
    rows, out = Pprof(tmp_path / "go").top(tmp_path / "pushed.pb.gz", "inuse_space")
    assert rows[0][1] == LEAK_FN, out


def test_program_output_and_status_unchanged(served):
    (served.workdir / "stop").write_text("")
    out, err = served.proc.communicate(timeout=60)
    assert served.proc.returncode == 3, err.decode(errors="replace")
    assert out == b"stopped\n"  # after "ready\n", read at start: nothing added by leakscope
    assert served.token_file.exists()  # the user's --token-file is kept
    assert "capture written to svc.lsc" in err.decode()
    assert "--push" not in err.decode()  # no upload failed


def test_bad_setup_refused_before_the_program_starts(ls):
    """A token file open to others, a non-loopback or malformed address: one line, exit 2, and
    neither the program nor a capture."""
    loose = ls.workdir / "loose.token"
    loose.write_text("0123456789abcdef0123\n")
    loose.chmod(0o644)
    cases = [(["--serve", "127.0.0.1:0", "--token-file", str(loose)], "open to others (mode 0644)"),
             (["--serve", "192.0.2.1:0"], "--serve-anywhere"),
             (["--serve", "127.0.0.1"], "ADDR:PORT"),
             (["--serve", "example.com:80"], "not a numeric"),
             (["--serve", "127.0.0.1:70000"], "bad port")]
    for opts, says in cases:
        r = ls.cli("run", "-o", "bad.lsc", *opts, "--", sys.executable, "-c", "open('ran', 'w')")
        assert_one_line_error(r, 2)
        assert says in r.err, (opts, r.err)
        assert not (ls.workdir / "ran").exists() and not (ls.workdir / "bad.lsc").exists(), opts
    # the file holding a private token is used as it is, and kept
    loose.chmod(0o600)
    r = ls.cli("run", "-o", "ok.lsc", "--serve", "127.0.0.1:0", "--token-file", str(loose), "--",
               sys.executable, "-c", "open('ran', 'w')")
    assert r.returncode == 0 and (ls.workdir / "ran").exists(), r.describe()
    assert loose.read_text() == "0123456789abcdef0123\n"


def test_attach_serves_and_pushes_until_sigterm_then_detaches(ls, targets, stub):
    t = Target([sys.executable, PROGRAMS_DIR / "attach_target.py", "loop"], ls.workdir)
    targets.append(t)
    token_file = ls.workdir / "attach.token"
    cli = subprocess.Popen([str(ls.build / "leakscope"), "attach", str(t.pid), "-o", "att.lsc", "--interval", "0.2",
                            "--serve", "127.0.0.1:0", "--token-file", str(token_file),
                            "--push", f"http://127.0.0.1:{stub.server_address[1]}/attached", "--push-interval", "1"],
                           cwd=ls.workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = cli.stderr.readline().decode()
        port = int(re.search(r"http://127\.0\.0\.1:(\d+)/", line).group(1))
        t.touch("leak.on")
        req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics",
                                     headers={"Authorization": "Bearer " + token_file.read_text().strip()})
        values = []
        for _ in range(2):
            time.sleep(1.0)
            with urllib.request.urlopen(req, timeout=30) as r:
                samples, _ = parse_prometheus(r.read().decode())
            values.append(samples[("leakscope_live_bytes", frozenset({("layer", "python")}))])
        assert values[1] > values[0], values
        cli.send_signal(signal.SIGTERM)
        out, err = cli.communicate(timeout=60)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.communicate()
    assert cli.returncode == 0, err
    assert b"detached from process" in out, out
    assert b"--push" not in err, err  # no upload failed
    # Pushed while attached, named after the process (its /proc comm), one last time at the end.
    pushed = [urllib.parse.urlsplit(p) for p, _, _ in PyroscopeStub.received if p.startswith("/attached/ingest?")]
    assert len(pushed) >= 2, PyroscopeStub.received
    q = dict(urllib.parse.parse_qsl(pushed[-1].query))
    comm = Path(f"/proc/{t.pid}/comm").read_text().strip()
    assert q["name"] == f"leakscope.{comm}.memory" and q["format"] == "pprof", q
    os.remove(ls.workdir / "leak.on")
    rc, out, err = t.finish()
    assert rc == 0 and out == "ready\ndone\n" and "leakscope" not in err, (rc, out, err)
