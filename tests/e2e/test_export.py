"""`leakscope export` (docs/exports.md): real programs run under leakscope, exported, and the
exported file read back the way its consumers read it."""
import json
import os
import re
import time

import pytest

from conftest import INTERPRETERS

PY = INTERPRETERS[-1][2]  # Debian's interpreter: what users run

LEAKER = '''import time
KEEP = []
def grow(n):
    for _ in range(n):
        KEEP.append(bytearray(2000))  # EXPORT-LEAK
def main():
    t0 = time.time()
    while time.time() - t0 < 2.0:
        grow(50)
        time.sleep(0.02)
main()
'''
LEAK_LINE = 5
COLLAPSED_LINE = re.compile(r"^[^;\n]+(;[^;\n]+)* (\d+)$")


def run_leaker(ls, mode, name="leaker.py"):
    script = ls.workdir / name
    script.write_text(LEAKER)
    r = ls.cli("run", "--mode", mode, "--interval", "0.1", "-q", "-o", "capture.lsc", "--", PY, script.name)
    assert r.returncode == 0, r.describe()
    return script


def collapsed(ls, *extra):
    r = ls.cli("export", "capture.lsc", "--format", "collapsed", *extra)
    assert r.returncode == 0, r.describe()
    lines = r.out.splitlines()
    assert lines, "empty export"
    parsed = []
    for line in lines:
        m = COLLAPSED_LINE.match(line)
        assert m, f"not a collapsed-stack line: {line!r}"
        frames, value = line.rsplit(" ", 1)
        parsed.append((frames.split(";"), int(value)))
    return parsed


def is_leak(label, file_name):
    return label.startswith("grow (") and label.endswith(f"{file_name}:{LEAK_LINE})")


def leak_bytes(parsed, file_name):
    return sum(v for frames, v in parsed if frames[0] == "python" and is_leak(frames[-1], file_name))


@pytest.mark.parametrize("mode", ["events", "aggregate"])
def test_collapsed_export_puts_the_leaking_line_first(ls, mode):
    script = run_leaker(ls, mode)
    parsed = collapsed(ls)
    top = max(parsed, key=lambda p: p[1])
    assert top[0][0] == "python" and is_leak(top[0][-1], script.name), top
    # The same figure `report` gives for that site.
    doc = ls.report()
    site = [s for s in doc["stacks"] if s["layer"] == "python" and s["frames"] and s["frames"][0]["line"] == LEAK_LINE
            and s["frames"][0]["function"] == "grow"]
    assert site, [s["frames"][0] for s in doc["stacks"][:5]]
    assert top[1] == site[0]["bytes"], (top[1], site[0]["bytes"])
    assert 100 * 2000 < top[1] < 20000 * 2100, top[1]


@pytest.mark.parametrize("mode", ["events", "aggregate"])
def test_export_at_an_earlier_moment(ls, mode):
    script = run_leaker(ls, mode)
    end = leak_bytes(collapsed(ls), script.name)
    mid = leak_bytes(collapsed(ls, "--at", "0.8"), script.name)
    assert 0 < mid < end * 0.8, (mid, end)
    assert leak_bytes(collapsed(ls, "--at", "1e12"), script.name) == end


def test_collapsed_names_never_split(ls):
    """A `;` in a file name would add a frame when read back: it is written as `:`."""
    script = run_leaker(ls, "events", name="semi;colon.py")
    parsed = collapsed(ls)
    top = max(parsed, key=lambda p: p[1])[0]
    # python; <module>; main; grow: exactly the frames written, the file name rewritten
    assert top[0] == "python" and is_leak(top[-1], "semi:colon.py") and len(top) == 4, top


def test_export_to_a_file_and_bad_input(ls, tmp_path):
    run_leaker(ls, "events")
    r = ls.cli("export", "capture.lsc", "--format", "collapsed", "-o", "out.txt")
    assert r.returncode == 0 and r.out == "", r.describe()
    out = ls.workdir / "out.txt"
    assert out.stat().st_mode & 0o777 == 0o600
    assert out.read_text().splitlines()[0]
    # An existing file is never overwritten.
    r = ls.cli("export", "capture.lsc", "--format", "collapsed", "-o", "out.txt")
    assert r.returncode == 2 and "already exists" in r.err and r.err.count("\n") == 1, r.describe()
    for at in ("-1", "nan", "inf", "soon"):
        r = ls.cli("export", "capture.lsc", "--format", "collapsed", "--at", at)
        assert r.returncode == 2 and r.err.count("\n") == 1 and r.out == "", (at, r.describe())
    r = ls.cli("export", "capture.lsc", "--format", "nosuch")
    assert r.returncode == 2 and r.err.count("\n") == 1, r.describe()
    r = ls.cli("export", "missing.lsc", "--format", "collapsed")
    assert r.returncode == 2 and r.err.count("\n") == 1, r.describe()
    bad = ls.workdir / "bad.lsc"
    bad.write_bytes((ls.workdir / "capture.lsc").read_bytes()[:100] + b"\xff" * 50)
    r = ls.cli("export", "bad.lsc", "--format", "collapsed")
    assert r.returncode in (0, 2) and "Traceback" not in r.err and r.returncode >= 0, r.describe()


def test_json_report_of_a_file_name_that_is_not_utf8(ls):
    """A Python file named with bytes that are not UTF-8 (Linux allows any): JSON documents carry
    U+FFFD for them instead of aborting (nlohmann's dump threw type_error.316)."""
    name = b"bad\xff.py"
    (ls.workdir / os.fsdecode(name)).write_text(LEAKER)
    r = ls.cli("run", "--mode", "events", "-q", "-o", "capture.lsc", "--", PY, os.fsdecode(name))
    assert r.returncode == 0, r.describe()
    r = ls.cli("report", "capture.lsc", "--format", "json")
    assert r.returncode == 0, r.describe()
    doc = json.loads(r.stdout)
    # The interpreter keeps the name surrogate-escaped (3 bytes that are not UTF-8 either).
    assert any(re.search("bad\ufffd+\\.py$", f["file"] or "") for s in doc["stacks"] for f in s["frames"]), \
        doc["stacks"][:2]
    r = ls.cli("diff", "capture.lsc@0.5", "capture.lsc", "--format", "json")
    assert r.returncode == 0, r.describe()
    json.loads(r.stdout)
