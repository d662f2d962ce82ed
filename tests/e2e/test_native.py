"""Native (non-Python) targets built from tests/e2e/programs/*.cpp."""
import re
from pathlib import Path

import pytest

from conftest import PROGRAMS_DIR, e2e_program, fmt_stacks, marker_line

N_SESSIONS = 1237


def test_native_cpp_leak(ls, build_dir):
    exe = e2e_program(build_dir, "native_leak")
    src = PROGRAMS_DIR / "native_leak.cpp"
    new_line = marker_line(src, "LEAK-NEW")
    transient_line = marker_line(src, "TRANSIENT-NEW")

    plain = ls.plain([exe, str(N_SESSIONS)])
    assert plain.returncode == 0, plain.describe()
    r = ls.run([exe, str(N_SESSIONS)])
    assert r.returncode == 0, r.describe()
    assert r.stdout == plain.stdout
    m = re.search(r"^SESSION_SIZE (\d+)$", r.out, re.M)
    assert m, r.out
    size = int(m.group(1))

    doc = ls.report()
    assert doc["capture"]["python_version"] is None
    assert doc["capture"]["complete"] is True, doc["warnings"]
    assert doc["capture"]["native"] is True, "native stacks are always recorded for a non-Python program"
    top = doc["stacks"][0]
    assert top["layer"] == "malloc", fmt_stacks(doc)
    assert top["count"] == N_SESSIONS, fmt_stacks(doc)
    assert top["bytes"] == N_SESSIONS * size, fmt_stacks(doc)
    assert all(f["native"] is True for f in top["frames"]), fmt_stacks(doc)

    leakers = [f for f in top["frames"] if "app::" in (f["function"] or "") and "leak_sessions" in f["function"]]
    assert leakers, "no demangled app::leak_sessions frame\n" + fmt_stacks(doc)
    f = leakers[0]
    assert f["file"] and f["file"].endswith("native_leak.cpp"), f
    assert f["line"] == new_line, f
    assert f["module"] and Path(f["module"]).name == exe.name, f
    assert re.fullmatch(r"0x[0-9a-f]+", f["address"] or ""), f
    # main() called it: a later frame.
    assert any(g["function"] == "main" for g in top["frames"][top["frames"].index(f) + 1:]), fmt_stacks(doc)

    # The Session that is deleted in the same loop is not live.
    for s in doc["stacks"]:
        assert not any(g["line"] == transient_line and (g["file"] or "").endswith("native_leak.cpp")
                       for g in s["frames"]), "a deleted Session is reported live\n" + fmt_stacks(doc)


@pytest.mark.parametrize("mode", [
    "fork",
    "vfork",
])
def test_spawned_child_does_not_take_over_capture(ls, build_dir, mode):
    """A program that starts another program keeps its own capture (architecture.md: Fork/Exec)."""
    exe = e2e_program(build_dir, "spawn_child")
    line = marker_line(PROGRAMS_DIR / "spawn_child.cpp", "SPAWN-LEAK")
    n = 1500
    r = ls.run([exe, mode, str(n)])
    assert r.returncode == 0, r.describe()
    assert f"child status 0, kept {n}" in r.out
    doc = ls.report()
    assert doc["capture"]["argv"] == [str(exe), mode, str(n)], doc["capture"]
    hits = [s for s in doc["stacks"]
            if any((f["function"] or "").startswith("keep_blocks") and f["line"] == line for f in s["frames"])]
    assert hits and hits[0]["count"] == n and hits[0]["bytes"] == 200 * n, fmt_stacks(doc)


def test_agent_exports_no_symbols(build_dir):
    """A preloaded agent's exported symbols interpose the program's own: exporting even
    operator new (from the agent's static libstdc++) made every C++ allocation invisible."""
    import shutil
    import subprocess
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("nm (binutils) is not installed")
    out = subprocess.run([nm, "-D", "--defined-only", str(build_dir / "libleakscope_agent.so")],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.strip() == "", "the agent exports symbols:\n" + out


def test_wrapper_called_from_many_chains(ls, build_dir):
    """One malloc call site (inside a wrapper) reached through six call chains with the same
    stack pointer: each chain's blocks are charged to its own caller, exactly."""
    exe = e2e_program(build_dir, "wrapper_leak")
    n = 3000
    r = ls.run([exe, str(n)])
    assert r.returncode == 0, r.describe()
    assert f"kept {6 * n}" in r.out
    doc = ls.report()
    by_fn = {}
    for s in doc["stacks"]:
        names = [f["function"] or "" for f in s["frames"]]
        if not names or not names[0].startswith("xmalloc"):
            continue  # the program's own bookkeeping and stdio
        callers = [x for x in names if x.startswith("leak_")]
        assert len(callers) == 1, "a stack mixes two call chains\n" + fmt_stacks(doc)
        by_fn[callers[0].split("(")[0]] = (s["count"], s["bytes"])
    for i, name in enumerate(["leak_a", "leak_b", "leak_c", "leak_d", "leak_e", "leak_f"]):
        assert by_fn.get(name) == (n, n * (101 + i)), f"{name}: {by_fn.get(name)}\n" + fmt_stacks(doc)
