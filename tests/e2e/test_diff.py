"""`leakscope diff A B`: growth between two snapshots of one capture, and between two captures."""
import json
from pathlib import Path

import pytest

from conftest import (PROGRAMS_DIR, assert_one_line_error, e2e_program, is_line, marker_line,
                      write_script)

USAGE_EXIT = 2

# Leaks at LEAK-X for the first ~2 s, then at LEAK-Y for ~2 s (time-based, so a slow machine
# only changes how many objects leak, not the shape).
TWO_PHASES = """\
import time

keep = []
t0 = time.monotonic()
while time.monotonic() - t0 < 2.0:
    for _ in range(20):
        keep.append(bytearray(200))  # LEAK-X
    time.sleep(0.002)
t1 = time.monotonic()
while time.monotonic() - t1 < 2.0:
    for _ in range(20):
        keep.append(bytearray(200))  # LEAK-Y
    time.sleep(0.002)
"""

# Leaks exactly N one-block objects (1 KiB bytes objects) at LEAK-N: the list is sized up
# front, so the line makes one allocation per object and nothing else.
LEAK_N = """\
import sys

n, size = int(sys.argv[1]), 1000
keep = [None] * n
for i in range(n):
    keep[i] = bytes(size)  # LEAK-N
"""


def diff(ls, a, b, *extra) -> dict:
    r = ls.cli("diff", str(a), str(b), "--format", "json", *extra, timeout=60)
    assert r.returncode == 0, "diff failed:\n" + r.describe()
    assert r.stderr == b"", r.describe()
    doc = json.loads(r.stdout)
    assert doc["schema"] == "leakscope.diff/1"
    for key in ("a", "b", "totals", "layers", "sites", "warnings"):
        assert key in doc, f"diff has no {key!r}"
    return doc


def sites_at(doc: dict, filename: str, line: int):
    return [s for s in doc["sites"] if s["frames"] and is_line(s["frames"][0], filename, line)]


def fmt_sites(doc: dict, n: int = 8) -> str:
    rows = []
    for s in doc["sites"][:n]:
        fr = ", ".join(f"{f['function']}@{Path(f['file']).name if f['file'] else '?'}:{f['line']}"
                       for f in s["frames"][:4])
        rows.append(f"  {s['status']:6} {s['layer']:9} {s['delta_bytes']:>+11} B {s['delta_count']:>+8} x  {fr}")
    return "sites:\n" + "\n".join(rows) + f"\ntotals: {doc['totals']}\nwarnings: {doc['warnings']}"


def check_site_invariants(doc: dict):
    for s in doc["sites"]:
        assert s["delta_bytes"] == s["b_bytes"] - s["a_bytes"], s
        assert s["delta_count"] == s["b_count"] - s["a_count"], s
    deltas = [s["delta_bytes"] for s in doc["sites"]]
    assert deltas == sorted(deltas, reverse=True), "sites are not sorted by growth"


@pytest.fixture
def two_phase_capture(ls, python):
    script = write_script(ls.workdir, "phases.py", TWO_PHASES)
    r = ls.cli("run", "-q", "--interval", "0.2", "-o", "cap.lsc", "--", python.path, script.name)
    assert r.returncode == 0, r.describe()
    return script


@pytest.mark.pythons("py3.11", "py3.12", "py3.13", "debian3.11")
def test_snapshots_of_one_capture(ls, python, two_phase_capture):
    script = two_phase_capture
    x, y = marker_line(script, "LEAK-X"), marker_line(script, "LEAK-Y")
    end = ls.report("cap.lsc")["capture"]["duration_s"]
    assert end > 3.0, end

    doc = diff(ls, "cap.lsc@1.0", f"cap.lsc@{end!r}")
    check_site_invariants(doc)
    assert 0.5 < doc["a"]["at_s"] <= 1.0 and doc["a"]["requested_at_s"] == 1.0, doc["a"]
    assert doc["b"]["end"] and not doc["a"]["end"], (doc["a"], doc["b"])
    assert doc["a"]["path"] == doc["b"]["path"] == "cap.lsc"

    top = doc["sites"][0]
    assert is_line(top["frames"][0], script.name, y), "LEAK-Y is not the top growth\n" + fmt_sites(doc)
    assert top["status"] == "new" and top["a_count"] == 0 and top["a_bytes"] == 0, top
    assert top["delta_count"] > 1000, top
    xs = sites_at(doc, script.name, x)
    assert xs and xs[0]["a_count"] > 0 and 0 < xs[0]["delta_bytes"] < top["delta_bytes"], fmt_sites(doc)
    assert doc["totals"]["delta_bytes"] > 0 and doc["totals"]["delta_count"] > 0, doc["totals"]
    layers = doc["layers"]
    assert layers["python_objects_bytes"]["delta"] > 0, layers
    assert layers["rss_bytes"]["a"] > 0 and layers["rss_bytes"]["b"] > 0, layers

    # Without @ is the end too; the text names the same site first.
    same = diff(ls, "cap.lsc@1.0", "cap.lsc")
    assert same["b"]["end"] and same["totals"] == doc["totals"], (same["totals"], doc["totals"])
    r = ls.cli("diff", "cap.lsc@1.0", "cap.lsc", timeout=60)
    assert r.returncode == 0, r.describe()
    grew = r.out.split("Grew", 1)[1]
    first = grew.split("#2", 1)[0]
    assert f"{script.name}:{y} in <module>" in first, r.out[:3000]


@pytest.mark.pythons("py3.12")
def test_identical_sides_have_no_deltas(ls, python, two_phase_capture):
    for a, b in (("cap.lsc", "cap.lsc"), ("cap.lsc@1.5", "cap.lsc@1.5"), ("cap.lsc", "./cap.lsc")):
        doc = diff(ls, a, b)
        t = doc["totals"]
        assert t["delta_bytes"] == 0 and t["delta_count"] == 0, (a, b, t)
        assert t["a_bytes"] == t["b_bytes"] > 0, t
        assert doc["sites"] == [], (a, b, fmt_sites(doc))
        assert t["sites_same"] > 0 and t["sites_new"] == t["sites_grew"] == t["sites_shrank"] == t["sites_gone"] == 0, t
        assert all(v["delta"] == 0 for v in doc["layers"].values()), doc["layers"]
    # Later A than B in one capture: allowed, deltas are B - A (memory only grew, so negative).
    doc = diff(ls, "cap.lsc", "cap.lsc@1.0")
    check_site_invariants(doc)
    assert doc["totals"]["delta_bytes"] < 0 and any("later than B" in w for w in doc["warnings"]), doc["totals"]


def test_two_captures_same_line(ls, python_any):
    script = write_script(ls.workdir, "leak_n.py", LEAK_N)
    line = marker_line(script, "LEAK-N")
    for n, out in ((1000, "a.lsc"), (5000, "b.lsc")):
        r = ls.cli("run", "-q", "-o", out, "--", python_any, script.name, str(n))
        assert r.returncode == 0, r.describe()
    doc = diff(ls, "a.lsc", "b.lsc")
    check_site_invariants(doc)
    hits = sites_at(doc, script.name, line)
    assert len(hits) == 1, fmt_sites(doc)
    s = hits[0]
    assert s == doc["sites"][0], "LEAK-N is not the top growth\n" + fmt_sites(doc)
    assert (s["a_count"], s["b_count"], s["delta_count"]) == (1000, 5000, 4000), s
    assert s["status"] == "grew" and s["layer"] == "python", s
    assert s["delta_bytes"] == 4 * s["a_bytes"], s
    assert doc["a"]["path"] == "a.lsc" and doc["b"]["path"] == "b.lsc" and doc["a"]["end"] and doc["b"]["end"]

    # And the other way round: the site shrank by as much.
    back = diff(ls, "b.lsc", "a.lsc", "--limit", "3")
    check_site_invariants(back)
    s = sites_at(back, script.name, line)
    assert s and s[0]["delta_count"] == -4000 and s[0]["status"] == "shrank", fmt_sites(back)
    assert back["sites"][-1] == s[0], "the biggest shrink is not last\n" + fmt_sites(back)
    assert len([x for x in back["sites"] if x["delta_bytes"] < 0]) <= 3


def test_two_captures_sampled(ls, python_any):
    """Sampled captures: the delta is an estimate close to the truth, and says so."""
    script = write_script(ls.workdir, "leak_n.py", LEAK_N)
    line = marker_line(script, "LEAK-N")
    for n, out in ((1000, "a.lsc"), (5000, "b.lsc")):
        r = ls.cli("run", "-q", "--sample-rate", "16384", "-o", out, "--", python_any, script.name, str(n))
        assert r.returncode == 0, r.describe()
    doc = diff(ls, "a.lsc", "b.lsc")
    assert doc["a"]["sample_rate"] == doc["b"]["sample_rate"] == 16384
    assert any("sampled" in w for w in doc["warnings"]), doc["warnings"]
    hits = sites_at(doc, script.name, line)
    assert len(hits) == 1, fmt_sites(doc)
    # About 300 samples in B and 60 in A: the estimate's standard deviation is about 300.
    assert 2500 <= hits[0]["delta_count"] <= 5500, hits[0]


def test_native_two_captures(ls, build_dir):
    exe = e2e_program(build_dir, "native_leak")
    line = marker_line(PROGRAMS_DIR / "native_leak.cpp", "LEAK-NEW")
    for n, out in ((1000, "a.lsc"), (5000, "b.lsc")):
        r = ls.run([exe, str(n)], output=out)
        assert r.returncode == 0, r.describe()
    doc = diff(ls, "a.lsc", "b.lsc")
    check_site_invariants(doc)
    hits = [s for s in doc["sites"] if any(is_line(f, "native_leak.cpp", line) for f in s["frames"])]
    # Two runs (different ASLR bases) still line up: one site, not one per capture.
    assert len(hits) == 1, fmt_sites(doc)
    s = hits[0]
    assert (s["a_count"], s["b_count"], s["delta_count"], s["status"]) == (1000, 5000, 4000, "grew"), s
    assert s == doc["sites"][0], fmt_sites(doc)
    assert doc["totals"]["sites_new"] == 0 and doc["totals"]["sites_gone"] == 0, fmt_sites(doc)


def test_bad_inputs(ls, python_any):
    r = ls.run([python_any, "-c", "x = [bytearray(100) for _ in range(100)]"], output="ok.lsc")
    assert r.returncode == 0, r.describe()
    (ls.workdir / "corrupt.lsc").write_bytes(b"LKSCOPE\0" + b"\xff" * 200)
    (ls.workdir / "notes.txt").write_text("not a capture\n")
    cases = [
        ("missing.lsc", "ok.lsc", "missing.lsc"),
        ("ok.lsc", "missing.lsc@3", "missing.lsc"),
        ("ok.lsc@abc", "ok.lsc", "ok.lsc@abc"),
        ("ok.lsc@", "ok.lsc", "ok.lsc@"),
        ("ok.lsc@-1", "ok.lsc", "ok.lsc@-1"),
        ("ok.lsc@1.2.3", "ok.lsc", "ok.lsc@1.2.3"),
        ("@5", "ok.lsc", "@5"),
        ("ok.lsc", "ok.lsc@99999", "beyond the end"),
        ("corrupt.lsc", "ok.lsc", None),
        ("ok.lsc", "notes.txt", "notes.txt"),
        ("ok.lsc", ".", None),
    ]
    for a, b, needle in cases:
        for fmt in ("text", "json"):
            r = ls.cli("diff", a, b, "--format", fmt, timeout=60)
            assert_one_line_error(r, USAGE_EXIT)
            assert r.stdout == b"", r.describe()
            if needle:
                assert needle in r.err, r.describe()
    for args in (["diff"], ["diff", "ok.lsc"], ["diff", "ok.lsc", "ok.lsc", "--format", "xml"],
                 ["diff", "ok.lsc", "ok.lsc", "--limit", "x"], ["diff", "ok.lsc", "ok.lsc", "extra"]):
        r = ls.cli(*args, timeout=30)
        assert_one_line_error(r, USAGE_EXIT)


def test_at_sign_in_file_name(ls, python_any):
    """A capture whose own name has an @ is still found when the suffix is not a time."""
    r = ls.run([python_any, "-c", "x = [bytearray(100) for _ in range(100)]"], output="v@rc1.lsc")
    assert r.returncode == 0, r.describe()
    doc = diff(ls, "v@rc1.lsc", "v@rc1.lsc@0")
    assert doc["a"]["path"] == doc["b"]["path"] == "v@rc1.lsc", (doc["a"], doc["b"])
    assert doc["b"]["requested_at_s"] == 0 and doc["totals"]["delta_bytes"] <= 0
