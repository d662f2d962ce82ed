"""Corrupted and hostile capture files: one clear error line, never a crash or a hang."""
import os
import random
import re
import struct

import pytest

from conftest import (CHUNK_MAGIC, HEADER_SIZE, INTERPRETERS, Leakscope, assert_one_line_error, chunk_offsets,
                      fmt_stacks, innermost, is_line, marker_line, write_script)

SCRIPT = '''\
kept = []
for i in range(150_000):
    kept.append(("row", i, "value-%d" % i))  # GOOD-LEAK
print(len(kept))
'''

HOSTILE_TIMEOUT = 30


@pytest.fixture(scope="session")
def good_capture(build_dir, tmp_path_factory):
    """(path, bytes, chunks, script) of a healthy multi-chunk capture of a Python program."""
    interp = next((p for _, _, p in INTERPRETERS if os.access(p, os.X_OK)), None)
    if interp is None:
        pytest.skip("no Python interpreter available")
    work = tmp_path_factory.mktemp("good_capture")
    ls = Leakscope(build_dir, work)
    script = write_script(work, "good.py", SCRIPT)
    # The event stream: a sub-second run spread over several chunks (an aggregate capture
    # writes at most one chunk a second), so cuts can land inside and between chunks.
    r = ls.run([interp, script.name], output="good.lsc", mode="events")
    assert r.returncode == 0, r.describe()
    doc = ls.report("good.lsc")
    assert doc["capture"]["complete"] is True and not doc["warnings"], doc["warnings"]
    assert is_line(innermost(doc["stacks"][0]), script.name, marker_line(script, "GOOD-LEAK")), fmt_stacks(doc)
    data = (work / "good.lsc").read_bytes()
    chunks = chunk_offsets(data)
    assert len(chunks) >= 3, f"want a capture with several chunks, got {len(chunks)}"
    assert chunks[-1][0] + 16 + chunks[-1][1] == len(data), "good capture has trailing bytes"
    return work / "good.lsc", data, chunks, script


def flip_middle_of(data, chunk):
    off, csize, _, _ = chunk
    b = bytearray(data)
    mid = off + 16 + csize // 2
    for k in range(4):
        b[mid + k] ^= 0x5A
    return bytes(b)


def hostile(kind, data, chunks, tmp_path):
    p = tmp_path / f"{kind}.lsc"
    if kind == "flip_first_chunk":
        p.write_bytes(flip_middle_of(data, chunks[0]))
    elif kind == "flip_middle_chunk":
        p.write_bytes(flip_middle_of(data, chunks[len(chunks) // 2]))
    elif kind == "flip_last_chunk":
        p.write_bytes(flip_middle_of(data, chunks[-1]))
    elif kind == "truncated_header":
        p.write_bytes(data[:HEADER_SIZE // 2])
    elif kind == "random_bytes":
        p.write_bytes(random.Random(1234).randbytes(200_000) if hasattr(random.Random, "randbytes")
                      else bytes(random.Random(1234).getrandbits(8) for _ in range(200_000)))
    elif kind == "chunk_claims_4gb":
        p.write_bytes(data[:HEADER_SIZE] + struct.pack("<IIII", CHUNK_MAGIC, 0xFFFFFFFF, 0xFFFFFFFF, 0)
                      + b"\x28\xb5\x2f\xfd" + bytes(4096))
    elif kind == "chunk_raw_size_4gb":
        off, csize, _, seq = chunks[0]
        p.write_bytes(data[:HEADER_SIZE] + struct.pack("<IIII", CHUNK_MAGIC, csize, 0xFFFFFFFF, seq)
                      + data[off + 16:])
    elif kind == "empty":
        p.write_bytes(b"")
    elif kind == "directory":
        p.mkdir()
    elif kind == "missing":
        pass
    else:
        raise AssertionError(kind)
    return p


@pytest.mark.parametrize("fmt", ["json", "text"])
@pytest.mark.parametrize("kind", ["flip_first_chunk", "flip_middle_chunk", "flip_last_chunk", "truncated_header",
                                  "random_bytes", "chunk_claims_4gb", "chunk_raw_size_4gb", "empty", "directory",
                                  "missing"])
def test_hostile_capture_rejected(ls, good_capture, kind, fmt):
    _, data, chunks, _ = good_capture
    path = hostile(kind, data, chunks, ls.workdir)
    r = ls.report_raw(path, fmt=fmt, timeout=HOSTILE_TIMEOUT)
    assert_one_line_error(r)
    assert r.stdout == b"", "a rejected capture must not print a partial report"


def check_cut_capture(ls, good_capture, cut_at, tmp_name):
    _, data, _, script = good_capture
    p = ls.workdir / tmp_name
    p.write_bytes(data[:cut_at])
    doc = ls.report(p)
    assert doc["capture"]["complete"] is False
    assert doc["warnings"], "no warning for a capture without a clean stop"
    top_py = [s for s in doc["stacks"] if s["layer"] == "python"]
    assert top_py and is_line(innermost(top_py[0]), script.name, marker_line(script, "GOOD-LEAK")), fmt_stacks(doc)
    return doc


def test_truncated_in_last_chunk_still_reports(ls, good_capture):
    _, data, chunks, _ = good_capture
    off, csize, _, _ = chunks[-1]
    doc = check_cut_capture(ls, good_capture, off + 16 + csize // 2, "cut_last_chunk.lsc")
    assert any(re.search(r"\b(ends?|ended|truncated|cut)\b", w) for w in doc["warnings"]), doc["warnings"]


def test_truncated_in_last_chunk_header_still_reports(ls, good_capture):
    _, data, chunks, _ = good_capture
    doc = check_cut_capture(ls, good_capture, chunks[-1][0] + 7, "cut_last_header.lsc")
    assert any(re.search(r"\b(ends?|ended|truncated|cut)\b", w) for w in doc["warnings"]), doc["warnings"]


def test_cut_at_chunk_boundary_has_no_clean_stop(ls, good_capture):
    """All chunks complete but the STOP record never written: like a kill between two flushes."""
    _, data, chunks, _ = good_capture
    check_cut_capture(ls, good_capture, chunks[-1][0], "cut_boundary.lsc")
