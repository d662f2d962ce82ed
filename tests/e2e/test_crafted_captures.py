"""Hand-built captures (capture/format.md) with well-formed compression but hostile contents."""
import json

import pytest

from capture_builder import (STREAM_D, STREAM_N, STREAM_P, chunk, header, minimal_raw, rec, section, string,
                             svarint, varint, zstd_available)
from conftest import assert_one_line_error

pytestmark = pytest.mark.skipif(not zstd_available(), reason="the zstd command line tool is not installed")

D, N, P = STREAM_D, STREAM_N, STREAM_P
STOP = section(D, rec("STOP", varint(1000), string("exit")))
TIMEOUT = 30


def test_minimal_crafted_capture_reads_back(ls):
    """The format as documented is what the reader reads."""
    path = ls.workdir / "minimal.lsc"
    path.write_bytes(header(pid=4242) + chunk(minimal_raw(block_size=4096, count=3), 0))
    doc = ls.report(path)
    cap = doc["capture"]
    assert (cap["pid"], cap["argv"], cap["complete"], cap["python_version"]) == (4242, ["crafted", "capture"], True, None)
    assert doc["totals"]["live_bytes"] == 3 * 4096 and doc["totals"]["live_count"] == 3
    assert len(doc["stacks"]) == 1
    s = doc["stacks"][0]
    assert (s["layer"], s["bytes"], s["count"]) == ("malloc", 3 * 4096, 3)
    assert [(f["native"], f["address"]) for f in s["frames"]] == [(True, "0x401000")]
    assert not doc["warnings"]


def rejected_cases():
    good = minimal_raw()
    frame_stack = rec("FRAME_NATIVE", varint(0x1000)) + rec("STACK", varint(0), varint(1))
    H = header()
    return {
        "bad_version": header(version=3) + chunk(good, 0),  # this leakscope reads versions 1 and 2
        "header_size_wrong": header()[:12] + (200).to_bytes(4, "little") + header()[16:] + chunk(good, 0),
        "unknown_tag": H + chunk(section(D, b"\x7e\x01\x02") + good, 0),
        "unknown_event_tag": H + chunk(section(N, b"\x55\x01\x02") + good, 0),
        "unknown_stream": H + chunk(section(9, b"") + good, 0),
        "record_cut_by_section_end": H + chunk(section(D, rec("FRAME_NATIVE", b"\x80\x80")) + good, 0),
        "section_past_chunk": H + chunk(bytes([D]) + varint(1 << 30) + rec("FRAME_NATIVE", varint(5)), 0),
        "varint_over_10_bytes": H + chunk(section(D, rec("FRAME_NATIVE", b"\xff" * 10 + b"\x01")) + good, 0),
        "string_length_2_pow_40": H + chunk(section(D, rec("INFO", string("k"), varint(1 << 40))) + good, 0),
        "string_over_1mib": H + chunk(section(D, rec("INFO", string("k"), string(b"x" * (2 << 20)))) + good, 0),
        "raw_size_too_big": H + chunk(good, 0, raw_size=len(good) + 100),
        "raw_size_too_small": H + chunk(good, 0, raw_size=len(good) - 5),
        "sequence_gap": H + chunk(minimal_raw(stop=False), 0) + chunk(STOP, 2),
        "sequence_starts_at_1": H + chunk(good, 1),
        "stack_parent_is_itself": H + chunk(section(D, rec("FRAME_NATIVE", varint(0x1000)) +
                                                    rec("STACK", varint(1), varint(1))) + STOP, 0),
        "stack_parent_defined_later": H + chunk(section(D, frame_stack + rec("STACK", varint(3), varint(1)) +
                                                        rec("STACK", varint(2), varint(1))) + STOP, 0),
        "stack_undefined_frame": H + chunk(section(D, rec("STACK", varint(0), varint(99))) + STOP, 0),
        "alloc_obj_in_native_stream": H + chunk(section(D, frame_stack) +
                                                section(N, rec("ALLOC_OBJ", svarint(0x5000), varint(8), svarint(1)))
                                                + STOP, 0),
        "arena_in_native_stream": H + chunk(section(N, rec("ARENA_ALLOC", svarint(0x5000), varint(8))) + STOP, 0),
    }


@pytest.mark.parametrize("case", sorted(rejected_cases()))
def test_crafted_corrupt_capture_rejected(ls, case):
    path = ls.workdir / f"{case}.lsc"
    path.write_bytes(rejected_cases()[case])
    r = ls.report_raw(path, timeout=TIMEOUT)
    assert_one_line_error(r)
    assert r.stdout == b""


@pytest.mark.parametrize("ids", [(5,), (1, 1)], ids=["first_code_id_5", "code_id_1_twice"])
def test_crafted_non_dense_code_id_rejected(ls, ids):
    d = b"".join(rec("CODE", varint(i), varint(1), b"\x0b", string(b""), string(f"f{k}.py"), string("f"))
                 for k, i in enumerate(ids))
    path = ls.workdir / "code_ids.lsc"
    path.write_bytes(header() + chunk(section(D, d) + minimal_raw(), 0))
    assert_one_line_error(ls.report_raw(path, timeout=TIMEOUT))


def survive_cases():
    H = header()
    frame_stack = rec("FRAME_NATIVE", varint(0x1000)) + rec("STACK", varint(0), varint(1))
    deep = rec("FRAME_NATIVE", varint(0x1000)) + b"".join(rec("STACK", varint(i), varint(1)) for i in range(100_000))
    cases = {
        "huge_sizes_and_unknown_frees": H + chunk(
            section(D, frame_stack) +
            section(N, rec("ALLOC_MALLOC", svarint(0x5000), varint((1 << 64) - 1), svarint(1)) +
                    rec("ALLOC_MALLOC", svarint(0x5000), varint((1 << 64) - 1), svarint(0)) +
                    rec("MUNMAP", svarint(-0x10000), varint((1 << 64) - 1)) + rec("FREE", svarint(12345))) +
            section(P, rec("ARENA_FREE", svarint(1 << 40), varint(1 << 62)) +
                    rec("ALLOC_OBJ", svarint(-(1 << 62)), varint(1 << 63), svarint(1))) + STOP, 0),
        "stack_chain_100k_deep": H + chunk(section(D, deep) + section(N, rec("ALLOC_MALLOC", svarint(0x5000), varint(10),
                                                                              svarint(100_000))) + STOP, 0),
        "alloc_refers_to_undefined_stack": H + chunk(section(N, rec("ALLOC_MALLOC", svarint(0x5000), varint(10),
                                                                     svarint(77))) + STOP, 0),
        "frame_refers_to_undefined_code": H + chunk(section(D, rec("FRAME_PY", varint(42), varint(1)) +
                                                            rec("STACK", varint(0), varint(1))) +
                                                    section(P, rec("ALLOC_OBJ", svarint(0x7000), varint(64),
                                                                   svarint(1))) + STOP, 0),
        "module_with_absurd_segments": H + chunk(section(D, rec("MODULE", string("/bin/sh"), varint(0x400000),
                                                                string(b"\x01" * 20), varint(1), varint(0),
                                                                varint(1 << 62)) + frame_stack) +
                                             section(N, rec("ALLOC_MALLOC", svarint(0x5000), varint(10), svarint(1)))
                                             + STOP, 0),
    }
    garbage = bytes((i * 97 + 13) % 256 for i in range(400))
    for kind in (9, 10, 11, 77):
        cases[f"garbage_line_table_kind_{kind}"] = H + chunk(
            section(D, rec("CODE", varint(1), varint(10), bytes([kind]), string(garbage), string("x.py"), string("f"))
                    + rec("FRAME_PY", varint(1), varint(1 << 40)) + rec("FRAME_PY", varint(1), varint(37))
                    + rec("STACK", varint(0), varint(1)) + rec("STACK", varint(1), varint(2)))
            + section(P, rec("ALLOC_OBJ", svarint(0x7000), varint(64), svarint(2))) + STOP, 0)
    return cases


@pytest.mark.parametrize("case", sorted(survive_cases()))
def test_crafted_hostile_capture_no_crash(ls, case):
    """Odd but parseable contents: a report or a one-line error, never a crash or a hang."""
    path = ls.workdir / f"{case}.lsc"
    path.write_bytes(survive_cases()[case])
    r = ls.report_raw(path, timeout=TIMEOUT)
    if r.returncode == 0:
        doc = json.loads(r.stdout)
        assert doc["schema"] == "leakscope.report/2"
        assert doc["stacks"], "an allocation record vanished"
        if case.startswith("garbage_line_table"):
            assert {f["function"] for f in doc["stacks"][0]["frames"]} == {"f"}
            assert {f["file"] for f in doc["stacks"][0]["frames"]} == {"x.py"}
    else:
        assert_one_line_error(r)
