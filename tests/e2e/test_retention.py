"""Retention paths (docs/retention.md): what keeps a leaking site's objects alive.

Each program in retention_programs/ leaks through a different holder for about 4 s; the report's
top leak must be at a line marked `# LEAK-SITE` and its first kept_alive_by path must contain
every string on the program's `# HOLDER:` lines.
"""
import time
from pathlib import Path

import pytest

from capture_builder import STREAM_D, chunk, header, minimal_raw, rec, section, string, varint, zstd_available
from conftest import assert_one_line_error, frame_str

PROGRAMS = Path(__file__).resolve().parent / "retention_programs"
ALL = sorted(p.name for p in PROGRAMS.glob("r*.py"))
# Instance dicts, closures, frames, thread states and coroutines differ most between versions.
VERSION_SENSITIVE = ["r02_class_registry.py", "r03_closure.py", "r06_stored_exceptions.py",
                     "r07_thread_local.py", "r09_asyncio_pending.py"]


def holders_of(path: Path):
    return [line.split("# HOLDER:", 1)[1].strip() for line in path.read_text().splitlines() if "# HOLDER:" in line]


def site_lines(path: Path):
    return [i for i, line in enumerate(path.read_text().splitlines(), 1) if "# LEAK-SITE" in line]


def run_program(ls, python, name, extra=()):
    prog = PROGRAMS / name
    r = ls.cli("run", "-q", "--interval", "0.2", *extra, "-o", "capture.lsc", "--", python.path, prog)
    assert r.returncode == 0, r.describe()
    return prog, ls.report("capture.lsc")


def check_holder(doc, prog):
    assert doc["verdict"] == "leak", doc["findings"]
    assert doc["retention"] is not None, "no retention record"
    top = doc["leaks"][0]
    own = [f for f in top["frames"] if f.get("file", "").endswith(prog.name)]
    assert own and own[0]["line"] in site_lines(prog), [frame_str(f) for f in top["frames"]]
    assert top["kept_alive_by"], f"no kept_alive_by for {[frame_str(f) for f in top['frames']]}"
    first = " \u2192 ".join(top["kept_alive_by"][0])
    for h in holders_of(prog):
        assert h in first, f"{h!r} not in the first path: {first}\nall: {top['kept_alive_by']}"
    assert top["retained_bytes"] > 0
    g = top["kept_alive_by_groups"][0]
    assert g["objects"] >= 100 and g["bytes"] > 0 and g["example"] == top["kept_alive_by"][0]


@pytest.mark.pythons("debian3.11")
@pytest.mark.parametrize("name", ALL)
def test_first_path_names_the_holder(ls, python, name):
    prog, doc = run_program(ls, python, name)
    check_holder(doc, prog)


@pytest.mark.pythons("py3.9", "py3.13")
@pytest.mark.parametrize("name", VERSION_SENSITIVE)
def test_holder_on_other_versions(ls, python, name):
    prog, doc = run_program(ls, python, name)
    check_holder(doc, prog)


@pytest.mark.pythons("debian3.11")
def test_text_report_and_holders(ls, python):
    prog, doc = run_program(ls, python, "r02_class_registry.py")
    holders = [" \u2192 ".join(h["path"]) for h in doc["retention"]["holders"]]
    assert holders and holders[0] == "class Session \u2192 attribute registry (dict)", holders[:5]
    assert doc["retention"]["holders"][0]["retained_bytes"] >= doc["leaks"][0]["bytes"]
    assert doc["retention"]["objects"] > 100000 and 0 < doc["retention"]["pause_s"] < 5
    text = ls.report_raw("capture.lsc", fmt="text").out
    assert "kept alive by" in text and "What keeps memory alive" in text, text
    assert "class Session \u2192 attribute registry (dict)" in text


@pytest.mark.pythons("debian3.11")
def test_sampled_capture_still_names_the_holder(ls, python):
    prog, doc = run_program(ls, python, "r01_global_list.py", extra=("--sample-rate", "8192"))
    check_holder(doc, prog)


@pytest.mark.pythons("debian3.11")
def test_events_mode_has_no_retention_and_runs_clean(ls, python):
    prog = PROGRAMS / "r01_global_list.py"
    r = ls.cli("run", "-q", "--mode", "events", "--interval", "0.2", "-o", "capture.lsc", "--", python.path, prog)
    assert r.returncode == 0 and r.err == "", r.describe()
    assert ls.report("capture.lsc")["retention"] is None
    # --no-retention: nothing walked, through a pyenv-style exec too (the option is passed on).
    r = ls.cli("run", "-q", "--no-retention", "-o", "off.lsc", "--", "/usr/bin/env", python.path, prog)
    assert r.returncode == 0 and r.err == "", r.describe()
    assert ls.report("off.lsc")["retention"] is None


@pytest.mark.pythons("debian3.11")
def test_program_output_and_status_unchanged(ls, python, tmp_path):
    script = tmp_path / "exits.py"
    script.write_text("import sys\nKEEP = [str(i) for i in range(100000)]\nprint('out', len(KEEP))\n"
                      "sys.stderr.write('err\\n')\nsys.exit(7)\n")
    plain = ls.plain([python.path, script])
    r = ls.run([python.path, script])
    assert (r.returncode, r.out, r.err) == (plain.returncode, plain.out, plain.err) == (7, "out 100000\n", "err\n")
    doc = ls.report("capture.lsc")
    assert doc["capture"]["complete"], doc["warnings"]
    assert doc["retention"] is not None


@pytest.mark.skipif(not zstd_available(), reason="the zstd command line tool is not installed")
@pytest.mark.parametrize("payload", [
    b"",                                             # empty
    varint(2),                                       # unknown version
    varint(1) + varint(0) * 5 + varint(1 << 40),     # a count larger than the record
    varint(1) + varint(0) * 5 + varint(0) + varint(1) + varint(1) + varint(7),  # string index out of range
    varint(1) + varint(0) * 5 + varint(0) * 5 + b"\x00",  # trailing bytes
], ids=["empty", "version", "count", "index", "trailing"])
def test_hostile_retain_record_is_one_line_error(ls, payload):
    path = ls.workdir / "hostile.lsc"
    good = minimal_raw()
    path.write_bytes(header() + chunk(good, 0) + chunk(section(STREAM_D, rec("RETAIN", string(payload))), 1))
    r = ls.report_raw(path)
    assert_one_line_error(r)
    assert "corrupt RETAIN record" in r.err


SERVICE = '''
import os, time
REGISTRY = {}
print("ready", flush=True)
i = 0
while not os.path.exists("stop"):
    for _ in range(200):
        REGISTRY[i] = ("order", i, "item-%d" % i)  # SVC-LEAK
        i += 1
    time.sleep(0.01)
print("done", flush=True)
'''


def retention_at(capture_doc):
    r = capture_doc["retention"]
    assert r is not None, "no retention record"
    holders = [" \u2192 ".join(h["path"]) for h in r["holders"]]
    assert holders and holders[0] == "module __main__ \u2192 global REGISTRY (dict)", holders[:4]
    return r["at_s"]


@pytest.mark.pythons("debian3.11", "py3.12")
def test_snapshot_and_detach_walk_a_live_process(ls, python, targets, tmp_path):
    """`snapshot PID` and `detach` walk the graph of a process that goes on running."""
    from conftest import Target
    script = tmp_path / "svc.py"
    script.write_text(SERVICE)
    t = Target([python.path, script], tmp_path)
    targets.append(t)
    r = ls.cli("attach", str(t.pid), "-q", "--interval", "0.2", "-o", "att.lsc")
    assert r.returncode == 0, r.describe()
    time.sleep(1.0)
    r = ls.cli("snapshot", str(t.pid))
    assert r.returncode == 0, r.describe()
    first = retention_at(ls.report("att.lsc"))  # the capture is still being written
    time.sleep(1.0)
    r = ls.cli("detach", str(t.pid), "-q")
    assert r.returncode == 0, r.describe()
    doc = ls.report("att.lsc")
    later = retention_at(doc)
    assert first < later, (first, later)
    top = [s for s in doc["stacks"] if s["kept_alive_by"]][0]
    assert "global REGISTRY (dict)" in " \u2192 ".join(top["kept_alive_by"][0])
    rc, out, err = t.finish()
    assert (rc, out) == (0, "ready\ndone\n"), err
