"""`export --format pprof` and `diff --format pprof` (docs/exports.md, "pprof"): the verdict
suite's leaking programs run under leakscope, exported, and read back by the real
`go tool pprof` (Debian's golang-go, offline)."""
import ast
import gzip
import json
import os
import pty
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import INTERPRETERS, SOURCE, Leakscope, marker_line, run_process

PY = INTERPRETERS[-1][2]  # Debian's interpreter: what users run
PROGRAMS = SOURCE / "tests" / "verdicts" / "programs"
DURATION = "2.5"  # seconds per program: enough for the leak to dominate
MARKER = {False: "# LEAK-SITE", True: "// LEAK-SITE"}  # by whether the program is C++
CXX_LEAK_FUNCTION = "shop::OrderBook::open"  # p12's LEAK-SITE (tests/verdicts/README.md)
GO = shutil.which("go")
pytestmark = pytest.mark.skipif(GO is None, reason="`go` is not installed (Debian golang-go, scripts/install-deps.sh)")


def enclosing_function(path: Path, line: int) -> str:
    """The name of the innermost Python function whose body holds `line`."""
    best = None
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef) and node.lineno <= line <= node.end_lineno:
            if best is None or node.lineno > best.lineno:
                best = node
    assert best, f"no function around {path.name}:{line}"
    return best.name


class Pprof:
    """`go tool pprof` with every Go directory in a temp dir and no network."""

    def __init__(self, home: Path):
        home.mkdir(parents=True, exist_ok=True)
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
                    "GOPATH": str(home / "gopath"), "GOCACHE": str(home / "gocache"), "GOFLAGS": "-mod=mod",
                    "GOPROXY": "off", "GOTOOLCHAIN": "local", "GOTELEMETRY": "off", "PPROF_TMPDIR": str(home),
                    "PPROF_BINARY_PATH": str(home)}
        self.home = home

    def __call__(self, *args) -> str:
        # pprof symbolizes what is not from local binaries only (the file is local: nothing fetched)
        r = run_process([GO, "tool", "pprof", *args], self.home, 60, env=self.env)
        assert r.returncode == 0, r.describe()
        return r.out

    def top(self, path, sample_index: str, *extra):
        """[(flat value in bytes or objects, function name)] in -top order (flat, biggest first)."""
        out = self("-top", "-nodecount=20", f"-sample_index={sample_index}", "-unit=B" if "space" in sample_index
                   else "-unit=count", *extra, str(path))
        rows, seen_header = [], False
        for line in out.splitlines():
            if re.match(r"\s*flat\s+flat%", line):
                seen_header = True
                continue
            if seen_header and line.strip():
                cols = line.split(None, 5)
                rows.append((float(re.sub(r"[A-Za-z]+$", "", cols[0])), cols[5]))
        assert rows, f"no -top rows:\n{out}"
        return rows, out


def parse_raw(text: str):
    """`pprof -raw`: header fields, samples (values, location ids, labels), locations, mappings."""
    header, samples, locations, mappings = {}, [], {}, []
    section = None
    for line in text.splitlines():
        if line in ("Samples:", "Locations", "Mappings"):
            section = line.rstrip(":")
            continue
        if section is None:
            if ":" in line:
                k, v = line.split(":", 1)
                header[k.strip()] = v.strip()
        elif section == "Samples":
            m = re.match(r"^\s*(-?\d+(?:\s+-?\d+)*):((?:\s+\d+)*)\s*$", line)
            if m:
                samples.append({"values": [int(v) for v in m.group(1).split()],
                                "locations": [int(i) for i in m.group(2).split()], "labels": {}})
            else:
                for k, v in re.findall(r"(\w+):\[([^\]]*)\]", line):
                    samples[-1]["labels"][k] = v
        elif section == "Locations":
            m = re.match(r"^\s*(\d+): (0x[0-9a-f]+)(?: M=(\d+))? ?(.*)$", line)
            if m:
                locations[int(m.group(1))] = {"address": int(m.group(2), 16), "mapping": int(m.group(3) or 0),
                                              "lines": [m.group(4)] if m.group(4) else []}
            elif line.strip() and locations:
                locations[max(locations)]["lines"].append(line.strip())
        elif section == "Mappings" and line.strip():
            mappings.append(line.strip())
    return header, samples, locations, mappings


@pytest.fixture(scope="module")
def pprof(tmp_path_factory) -> Pprof:
    return Pprof(tmp_path_factory.mktemp("go-home"))


@pytest.fixture(scope="module")
def captures(build_dir, tmp_path_factory):
    """Each program run once under leakscope (by name, on first use): (Leakscope, capture path, command)."""
    done = {}

    def get(name, *flags):
        key = (name, flags)
        if key not in done:
            ls = Leakscope(build_dir, tmp_path_factory.mktemp(name.split(".")[0]))
            if name.endswith(".cpp"):
                exe = ls.workdir / Path(name).stem
                r = ls.plain(["g++", "-std=c++20", "-O1", "-g", "-pthread", str(PROGRAMS / name), "-o", str(exe)])
                assert r.returncode == 0, r.describe()
                command = [exe, DURATION]
            else:
                command = [PY, PROGRAMS / name, "--duration", DURATION]
            r = ls.cli("run", "-q", "--interval", "0.2", *flags, "-o", "capture.lsc", "--", *command)
            assert r.returncode == 0, r.describe()
            done[key] = (ls, ls.workdir / "capture.lsc", command)
        return done[key]
    return get


def export(ls: Leakscope, *args, out="profile.pb.gz") -> Path:
    r = ls.cli(*args, "--format", "pprof", "-o", out)
    assert r.returncode == 0 and r.out == "", r.describe()
    path = ls.workdir / out
    assert path.read_bytes()[:2] == b"\x1f\x8b", "not gzip"
    return path


def at_line(location: dict, program: str, line: int) -> bool:
    """A -raw location with a line `function /path/program:line s=0` (any of its inlined lines)."""
    return any(re.search(rf"/{re.escape(program)}:{line} s=", ln) for ln in location["lines"])


@pytest.mark.parametrize("program", ["p01_request_registry.py", "p05_stored_exceptions.py", "p09_ctypes_malloc.py",
                                     "p12_lost_index.cpp"])
def test_pprof_puts_the_leaking_function_first(captures, pprof, program):
    ls, capture, command = captures(program)
    path = export(ls, "export", str(capture))
    native = program.endswith(".cpp")
    site_line = marker_line(PROGRAMS / program, MARKER[native])
    leak_fn = CXX_LEAK_FUNCTION if native else enclosing_function(PROGRAMS / program, site_line)
    layer = "python" if program.startswith(("p01", "p05")) else "malloc"

    inuse, out = pprof.top(path, "inuse_space")
    assert "Type: inuse_space" in out, out
    # "[python3.11]" rows are a module's addresses without a function name (the interpreter's
    # own allocations before any Python frame): not a function, so not ranked against one
    named = [row for row in inuse if not row[1].startswith("[")]
    assert named[0][1] == leak_fn, out
    alloc, out_alloc = pprof.top(path, "alloc_space")
    alloc_leak = [v for v, fn in alloc if fn == leak_fn]
    # it allocated at least what it still holds: alloc values are there, and are not counts
    assert alloc_leak and alloc_leak[0] >= named[0][0] > 0, (out, out_alloc)
    objects, out_obj = pprof.top(path, "inuse_objects")
    assert any(fn == leak_fn and 0 < v < named[0][0] / 100 for v, fn in objects), out_obj
    # -traces: the leaking stack under its layer label; Python names such as <module> kept whole
    traces = pprof("-traces", str(path))
    leaf_row = re.compile(rf"^\s+\S+\s+{re.escape(leak_fn)}$", re.M)  # "  1.07MB   handle"
    block = next((b for b in traces.split("-----------+") if leaf_row.search(b)), "")
    assert re.search(rf"layer:\s+{layer}\n", block), traces[:3000]
    if not native:
        assert block.rstrip().endswith("<module>"), block

    header, samples, locations, mappings = parse_raw(pprof("-raw", str(path)))
    assert header.get("PeriodType") == "space bytes" and header.get("Period") == "1", header
    assert all(len(s["values"]) == 4 for s in samples), samples[:3]
    # the samples at the marked line (the leaf, or the caller of operator new), with their layer
    leaking = [s for s in samples if any(at_line(locations[i], program, site_line) for i in s["locations"][:2])]
    assert leaking and all(s["labels"].get("layer") == layer for s in leaking), (leaking[:3], samples[:3])
    site = next(locations[i] for i in leaking[0]["locations"] if at_line(locations[i], program, site_line))
    if not native:  # no mapping, no address: one line `function /path/file.py:line`
        assert site["mapping"] == 0 and site["address"] == 0 and site["lines"][0].startswith(leak_fn + " "), site
        return
    # the executable's mapping, first, with the build id `readelf -n` reads from the binary
    build_id = re.search(r"Build ID: ([0-9a-f]+)", ls.plain(["readelf", "-n", command[0]]).out).group(1)
    exe = mappings[0].split()
    assert exe[2] == str(command[0]) and exe[3] == build_id, mappings
    assert site["mapping"] == int(exe[0].rstrip(":")) and site["address"], site
    start, limit = (int(a, 16) for a in exe[1].split("/")[:2])
    assert start <= site["address"] < limit, (exe, site)
    # has_functions / has_filenames: claimed exactly when every location of the mapping has it
    assert "[FN]" in exe[-1], exe  # everything the program ran was symbolized
    for m in mappings:
        fields = m.split()
        mine = [loc for loc in locations.values() if loc["mapping"] == int(fields[0].rstrip(":"))]
        named = bool(mine) and all(loc["lines"] for loc in mine)
        with_file = named and all(not re.search(r" :\d+ s=", ln) for loc in mine for ln in loc["lines"])
        assert ("[FN]" in fields[-1], "[FL]" in fields[-1]) == (named, with_file), (m, mine[:5])


def test_sampled_capture_has_the_period_and_scaled_values(captures, pprof):
    program = "p01_request_registry.py"
    ls, capture, _ = captures(program, "--sample-rate", "65536")
    path = export(ls, "export", str(capture))
    header, samples, locations, _ = parse_raw(pprof("-raw", str(path)))
    assert header.get("Period") == "65536", header
    site_line = marker_line(PROGRAMS / program, MARKER[False])
    leaf_at_site = {i for i, loc in locations.items() if loc["lines"] and f"{program}:{site_line}" in loc["lines"][0]}
    pprof_bytes = sum(s["values"][1] for s in samples if s["locations"] and s["locations"][0] in leaf_at_site)
    doc = ls.report(capture)
    report_bytes = sum(s["bytes"] for s in doc["stacks"] if s["frames"] and s["frames"][0].get("line") == site_line
                       and Path(s["frames"][0].get("file") or "").name == program)
    # scaled estimates (the run keeps about a megabyte there while a sample is every 64 KiB), the
    # same figure as the report's for that site
    assert report_bytes > 4 * 65536, report_bytes
    assert abs(pprof_bytes - report_bytes) <= 0.01 * report_bytes + 2, (pprof_bytes, report_bytes)


def test_diff_as_pprof_shows_the_growth(captures, pprof):
    program = "p01_request_registry.py"
    ls, capture, _ = captures(program)
    leak_fn = enclosing_function(PROGRAMS / program, marker_line(PROGRAMS / program, MARKER[False]))
    path = export(ls, "diff", f"{capture}@1", str(capture), out="growth.pb.gz")
    rows, out = pprof.top(path, "inuse_space")
    assert rows[0][1] == leak_fn and rows[0][0] > 0, out
    header, samples, _, _ = parse_raw(pprof("-raw", str(path)))
    assert all(len(s["values"]) == 2 for s in samples), samples[:3]
    # the growth, shrunk sites (negative) included, is what the JSON diff says for the same moments
    r = ls.cli("diff", f"{capture}@1", str(capture), "--format", "json")
    assert r.returncode == 0, r.describe()
    totals = json.loads(r.out)["totals"]
    assert sum(s["values"][1] for s in samples) == totals["delta_bytes"] > 0, totals
    assert sum(s["values"][0] for s in samples) == totals["delta_count"], totals
    comment = pprof("-comments", str(path))
    assert "the last snapshot by @1.000 s" in comment and "at its end" in comment, comment


def test_pprof_is_never_written_to_a_terminal(captures):
    ls, capture, _ = captures("p01_request_registry.py")
    main, sub = pty.openpty()
    try:
        p = subprocess.run([str(ls.exe), "export", str(capture), "--format", "pprof"], cwd=ls.workdir,
                           stdin=subprocess.DEVNULL, stdout=sub, stderr=subprocess.PIPE, timeout=60)
    finally:
        os.close(sub)
        os.close(main)
    assert p.returncode == 2 and p.stderr.decode().count("\n") == 1 and "binary" in p.stderr.decode(), p
    # through a pipe it is written, byte for byte what -o writes
    r = ls.cli("export", str(capture), "--format", "pprof")
    assert r.returncode == 0, r.describe()
    assert r.stdout == export(ls, "export", str(capture), out="again.pb.gz").read_bytes()
    assert gzip.decompress(r.stdout)
