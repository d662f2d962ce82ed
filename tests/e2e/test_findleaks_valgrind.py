"""Reachability (`run --findleaks`) agrees with valgrind memcheck, run here as the oracle.

Every program in tests/e2e/findleaks_programs/ (NAME.c or NAME.cpp, built by CMake as
BUILD/fl_NAME, -O0; NAME_so.c becomes BUILD/libfl_NAME.so) keeps some blocks reachable in one
kind of root and loses others. Each one runs once under
`valgrind --leak-check=full --show-leak-kinds=all` and once under `leakscope run --findleaks`:
leakscope's directly lost bytes and blocks must equal valgrind's "definitely lost", its
indirectly lost ones valgrind's "indirectly lost" (docs/findleaks.md), and the biggest lost group
must name the program function that allocated it.

valgrind's numbers are never written here. Each program documents its own expectation in an
`EXPECT:` line of its header comment; test_valgrind_oracle checks that valgrind agrees with it, so
that a program that no longer does what it says is reported as such, not as a leakscope bug.
"""
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import pytest

from conftest import BUILD, E2E_DIR, SOURCE, frame_str, run_process

PROGRAMS_DIR = E2E_DIR / "findleaks_programs"
VALGRIND_TIMEOUT = 120
LOST_EXIT_STATUS = 23  # `run` exits with LeakSanitizer's status when anything is lost

# The cases first, in its order; any other program after them, by name.
ORDER = ["global", "static_local", "thread_stack", "register", "tls", "pthread_key", "interior",
         "lost_tree", "lost_cycles", "realloc", "calloc", "posix_memalign", "aligned_alloc",
         "cpp_containers", "cpp_reachable", "mixed", "dtls", "arena_neighbors"]


def _sources() -> Dict[str, Path]:
    found = {p.stem: p for p in PROGRAMS_DIR.iterdir()
             if p.suffix in (".c", ".cpp") and not p.stem.endswith("_so")}
    names = [n for n in ORDER if n in found] + sorted(n for n in found if n not in ORDER)
    return {n: found[n] for n in names}


SOURCES = _sources()


# --------------------------------------------------------------------------- valgrind

@dataclass
class LossRecord:
    kind: str                # "definitely lost", "indirectly lost", "possibly lost", "still reachable"
    own_bytes: int           # the blocks' own bytes (without what they hold indirectly)
    blocks: int
    frames: List[tuple] = field(default_factory=list)   # (function, file or object) innermost first


@dataclass
class Memcheck:
    returncode: int
    log: str
    summary: Dict[str, tuple]          # "definitely" -> (bytes, blocks), "indirectly", "possibly"
    records: List[LossRecord]

    def lost(self, kind: str) -> tuple:
        return self.summary.get(kind, (0, 0))


_NUM = r"[\d,]+"
_SUMMARY_RE = re.compile(rf"^==\d+==\s+(definitely|indirectly|possibly) lost: ({_NUM}) bytes in ({_NUM}) blocks", re.M)
_RECORD_RE = re.compile(rf"^==\d+== ({_NUM})(?: \(({_NUM}) direct, ({_NUM}) indirect\))? bytes in ({_NUM}) blocks "
                        r"are (definitely lost|indirectly lost|possibly lost|still reachable) in loss record")
_FRAME_RE = re.compile(r"^==\d+==\s+(?:at|by) 0x[0-9A-Fa-f]+: (.+) \(([^()]*)\)\s*$")


def _int(s: str) -> int:
    return int(s.replace(",", ""))


def parse_memcheck(log: str) -> tuple:
    summary = {m.group(1): (_int(m.group(2)), _int(m.group(3))) for m in _SUMMARY_RE.finditer(log)}
    records: List[LossRecord] = []
    current: Optional[LossRecord] = None
    for line in log.splitlines():
        m = _RECORD_RE.match(line)
        if m:
            own = _int(m.group(2)) if m.group(2) else _int(m.group(1))
            current = LossRecord(m.group(5), own, _int(m.group(4)))
            records.append(current)
            continue
        if current is not None:
            f = _FRAME_RE.match(line)
            if f:
                where = f.group(2)
                where = where[3:] if where.startswith("in ") else where.rsplit(":", 1)[0]
                current.frames.append((f.group(1), where))
            else:
                current = None
    return summary, records


_MEMCHECK: Dict[str, Memcheck] = {}


def executable(name: str) -> Path:
    exe = BUILD / f"fl_{name}"
    if not exe.is_file():
        pytest.fail(f"{exe} is missing: re-run `cmake -S {SOURCE} -B {BUILD} -G Ninja` (the programs are "
                    f"globbed) and build it (tests/e2e/findleaks_programs/{SOURCES[name].name})")
    return exe


def memcheck(name: str, tmp_path: Path) -> Memcheck:
    """valgrind's verdict on fl_NAME, computed once per session."""
    if name in _MEMCHECK:
        return _MEMCHECK[name]
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        pytest.fail("valgrind is not installed (scripts/install-deps.sh installs it): it is this suite's oracle")
    exe = executable(name)
    log_path = tmp_path / f"memcheck-{name}.log"
    r = run_process([valgrind, "--tool=memcheck", "--leak-check=full", "--show-leak-kinds=all",
                     "--errors-for-leak-kinds=none", "--num-callers=40", f"--log-file={log_path}", exe],
                    tmp_path, VALGRIND_TIMEOUT)
    log = log_path.read_text(errors="replace") if log_path.exists() else ""
    summary, records = parse_memcheck(log)
    assert r.returncode == 0, f"{name} under valgrind:\n" + r.describe() + "\n--- valgrind log\n" + log[-4000:]
    if not summary:
        assert "All heap blocks were freed -- no leaks are possible" in log, \
            f"no LEAK SUMMARY in valgrind's log of {name}:\n{log[-4000:]}"
    assert re.search(r"ERROR SUMMARY: 0 errors", log), f"{name} has memory errors under valgrind:\n{log[-6000:]}"
    result = Memcheck(r.returncode, log, summary, records)
    _MEMCHECK[name] = result
    return result


def documented_expectation(name: str) -> tuple:
    text = SOURCES[name].read_text()
    m = re.search(r"EXPECT: definitely (\d+)/(\d+) indirectly (\d+)/(\d+)", text)
    assert m, f"{SOURCES[name].name} has no `EXPECT: definitely B/N indirectly B/N` line in its header"
    d_b, d_n, i_b, i_n = (int(g) for g in m.groups())
    return (d_b, d_n), (i_b, i_n)


def base_name(function: Optional[str]) -> str:
    """`app::make_session() const` -> `make_session`; `block` -> `block`."""
    if not function:
        return ""
    name = function.split("(", 1)[0].strip()
    return name.rsplit("::", 1)[-1]


def program_functions(record: LossRecord, source: Path) -> set:
    """Functions of the program itself (frames in its own source file) that led to the
    allocation, main excepted."""
    names = set()
    for function, where in record.frames:
        if Path(where).name == source.name and base_name(function) not in ("", "main"):
            names.add(base_name(function))
    return names


# --------------------------------------------------------------------------- tests

def test_enough_programs():
    """The issue asks for at least 15 programs; each is built as BUILD/fl_NAME."""
    assert len(SOURCES) >= 15, sorted(SOURCES)
    assert "cpp_reachable" in SOURCES, "the C++ program that keeps everything reachable is missing"


@pytest.mark.parametrize("name", list(SOURCES))
def test_valgrind_oracle(name, tmp_path):
    """The program runs cleanly under valgrind and does what its header comment says."""
    mc = memcheck(name, tmp_path)
    definitely, indirectly = documented_expectation(name)
    assert (mc.lost("definitely"), mc.lost("indirectly")) == (definitely, indirectly), (
        f"{SOURCES[name].name} documents definitely {definitely}, indirectly {indirectly} (bytes, blocks), "
        f"valgrind says definitely {mc.lost('definitely')}, indirectly {mc.lost('indirectly')}: "
        f"the program no longer does what it says\n--- valgrind log (end)\n{mc.log[-6000:]}")
    lost_records = [r for r in mc.records if r.kind in ("definitely lost", "indirectly lost")]
    assert sum(r.own_bytes for r in lost_records) == mc.lost("definitely")[0] + mc.lost("indirectly")[0], \
        "loss records do not add up to the summary: the log parser is wrong\n" + mc.log[-6000:]


def _fmt_groups(groups: List[dict], n: int = 10) -> str:
    rows = []
    for g in sorted(groups, key=lambda g: -g.get("bytes", 0))[:n]:
        frames = ", ".join(frame_str(f) for f in g.get("frames", [])[:8])
        rows.append(f"  {g.get('kind'):8} {g.get('bytes'):>9} B {g.get('count'):>5} x  {frames}")
    return "lost groups:\n" + "\n".join(rows)


def _fmt_records(records: List[LossRecord], source: Path) -> str:
    rows = [f"  {r.kind:15} {r.own_bytes:>9} B {r.blocks:>5} x  {sorted(program_functions(r, source))}"
            for r in sorted(records, key=lambda r: -r.own_bytes)]
    return "valgrind loss records:\n" + "\n".join(rows)


@pytest.mark.parametrize("name", list(SOURCES))
def test_findleaks_matches_valgrind(name, ls, tmp_path):
    source = SOURCES[name]
    mc = memcheck(name, tmp_path)
    (vg_direct, vg_direct_n), (vg_indirect, vg_indirect_n) = mc.lost("definitely"), mc.lost("indirectly")
    anything_lost = vg_direct_n + vg_indirect_n > 0

    r = ls.cli("run", "--findleaks", "-q", "-o", "cap.lsc", "--", executable(name))
    assert r.returncode == (LOST_EXIT_STATUS if anything_lost else 0), (
        f"`run --findleaks` should exit {LOST_EXIT_STATUS if anything_lost else 0} (valgrind: definitely "
        f"{vg_direct} B in {vg_direct_n}, indirectly {vg_indirect} B in {vg_indirect_n})\n" + r.describe())

    doc = ls.report("cap.lsc", limit=1000)
    fl = doc.get("findleaks")
    assert isinstance(fl, dict), f"the report has no findleaks section: keys {sorted(doc)}"
    assert fl.get("roots") == "precise", \
        f"a program started by `run`, with glibc's malloc, is scanned with precise roots, not {fl.get('roots')!r}"
    t = fl["totals"]
    lost = fl["lost"]
    context = (f"\nvalgrind: definitely {vg_direct} B in {vg_direct_n} blocks, indirectly {vg_indirect} B in "
               f"{vg_indirect_n} blocks\nleakscope totals: {t}\n{_fmt_groups(lost)}\n"
               f"{_fmt_records([x for x in mc.records if x.kind in ('definitely lost', 'indirectly lost')], source)}")

    assert (t["direct_bytes"], t["direct_count"]) == (vg_direct, vg_direct_n), \
        "directly lost differs from valgrind's definitely lost" + context
    assert (t["indirect_bytes"], t["indirect_count"]) == (vg_indirect, vg_indirect_n), \
        "indirectly lost differs from valgrind's indirectly lost" + context
    assert (t["lost_bytes"], t["lost_count"]) == (vg_direct + vg_indirect, vg_direct_n + vg_indirect_n), \
        "lost is not direct + indirect" + context

    if not anything_lost:
        assert lost == [], "nothing is lost, yet there are lost groups" + context
        return

    for g in lost:
        assert g["kind"] in ("direct", "indirect"), f"a native program has no {g['kind']!r} group" + context
        assert g["python_type"] is None, context
    by_kind = {k: (sum(g["bytes"] for g in lost if g["kind"] == k), sum(g["count"] for g in lost if g["kind"] == k))
               for k in ("direct", "indirect")}
    assert by_kind == {"direct": (vg_direct, vg_direct_n), "indirect": (vg_indirect, vg_indirect_n)}, \
        "the lost groups do not add up to the totals" + context

    # The biggest group (by its blocks' own bytes) is charged to the program function that
    # allocated it, as valgrind's biggest loss record is.
    vg_lost = [x for x in mc.records if x.kind in ("definitely lost", "indirectly lost")]
    vg_max = max(x.own_bytes for x in vg_lost)
    wanted = set()
    for x in vg_lost:
        if x.own_bytes == vg_max:
            wanted |= program_functions(x, source)
    assert wanted, "valgrind's biggest loss record names no function of the program" + context
    ls_max = max(g["bytes"] for g in lost)
    named = [g for g in lost if g["bytes"] == ls_max
             and wanted & {base_name(f.get("function")) for f in g.get("frames", [])}]
    assert named, (f"the biggest lost group ({ls_max} B) does not name any of {sorted(wanted)} (valgrind's "
                   f"biggest loss record, {vg_max} B, was allocated there)" + context)
