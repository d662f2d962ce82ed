"""C extensions and ctypes: native frames and the Python line that called them."""
import subprocess
from pathlib import Path

import pytest

from conftest import PROGRAMS_DIR, fmt_stacks, marker_line, write_script

EXT_SRC = PROGRAMS_DIR / "leakext.c"

SCRIPT = '''\
import ctypes
import sys

sys.path.insert(0, sys.argv[1])
import leakext

N_PYMEM, SIZE_PYMEM = 2000, 512
N_MALLOC, SIZE_MALLOC = 1500, 1024
N_CTYPES, SIZE_CTYPES = 3000, 777

libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
held = []


def use_pymem():
    leakext.pymem_leak(N_PYMEM, SIZE_PYMEM)  # CALL-PYMEM


def use_malloc():
    leakext.malloc_leak(N_MALLOC, SIZE_MALLOC)  # CALL-MALLOC


def use_ctypes():
    for _ in range(N_CTYPES):
        held.append(libc.malloc(SIZE_CTYPES))  # CALL-CTYPES


use_pymem()
use_malloc()
use_ctypes()
print("ok", len(held), all(held))
'''


def build_extension(python, outdir: Path) -> Path:
    include = Path(python.include_dir)
    if not (include / "Python.h").is_file():
        pytest.skip(f"no Python.h for {python.name} in {include}")
    outdir.mkdir()
    so = outdir / ("leakext" + python.ext_suffix)
    r = subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-g", f"-I{include}", str(EXT_SRC), "-o", str(so)],
                       capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr.decode()
    return outdir


def python_frame_after(stack, native_index, script_name, line):
    """The Python frame for script:line, found further out than frames[native_index]."""
    return [f for f in stack["frames"][native_index + 1:]
            if not f["native"] and f["file"] and Path(f["file"]).name == script_name and f["line"] == line]


def run_extension_script(ls, python, native):
    ext_dir = build_extension(python, ls.workdir / "ext")
    script = write_script(ls.workdir, "use_ext.py", SCRIPT)
    r = ls.run([python.path, script.name, str(ext_dir)], native=native)
    assert r.returncode == 0, r.describe()
    assert r.out.strip() == "ok 3000 True", r.describe()
    doc = ls.report()
    assert doc["capture"]["native"] is native
    assert doc["capture"]["python_version"] == python.version
    assert doc["capture"]["complete"] is True, doc["warnings"]
    return script, doc


def find_ext_stack(doc, func):
    for s in doc["stacks"]:
        for i, f in enumerate(s["frames"]):
            if f["native"] and (f["function"] or "").startswith(func):
                return s, i
    pytest.fail(f"no stack with a native frame {func}\n" + fmt_stacks(doc, 12))


def test_extension_native_frames(ls, python):
    script, doc = run_extension_script(ls, python, native=True)
    src_pymem = marker_line(EXT_SRC, "EXT-PYMEM")
    src_malloc = marker_line(EXT_SRC, "EXT-MALLOC")

    for func, src_line, call_marker, layer, n, size in (
            ("ext_pymem_leak", src_pymem, "CALL-PYMEM", "python", 2000, 512),
            ("ext_malloc_leak", src_malloc, "CALL-MALLOC", "malloc", 1500, 1024)):
        stack, i = find_ext_stack(doc, func)
        frame = stack["frames"][i]
        assert stack["layer"] == layer, fmt_stacks(doc, 12)
        assert (stack["count"], stack["bytes"]) == (n, n * size), fmt_stacks(doc, 12)
        assert frame["module"] and Path(frame["module"]).name.startswith("leakext"), frame
        assert (frame["file"] or "").endswith("leakext.c") and frame["line"] == src_line, frame
        line = marker_line(script, call_marker)
        assert python_frame_after(stack, i, script.name, line), \
            f"{func}: no Python frame {script.name}:{line} after the native frame\n" + fmt_stacks(doc, 12)

    ctypes_line = marker_line(script, "CALL-CTYPES")
    hits = [s for s in doc["stacks"] if s["layer"] == "malloc" and python_frame_after(s, -1, script.name, ctypes_line)]
    assert hits, "no malloc stack with the ctypes caller line\n" + fmt_stacks(doc, 12)
    assert (hits[0]["count"], hits[0]["bytes"]) == (3000, 3000 * 777), fmt_stacks(doc, 12)
    assert any(f["native"] for f in hits[0]["frames"]), "--native stack without native frames"


@pytest.mark.pythons("py3.9", "py3.12", "debian3.11")
def test_extension_without_native_charges_python_lines(ls, python):
    """Without --native the same blocks are still charged to the calling Python lines."""
    script, doc = run_extension_script(ls, python, native=False)
    for marker, layer, n, size in (("CALL-PYMEM", "python", 2000, 512), ("CALL-MALLOC", "malloc", 1500, 1024),
                                   ("CALL-CTYPES", "malloc", 3000, 777)):
        line = marker_line(script, marker)
        hits = [s for s in doc["stacks"] if python_frame_after(s, -1, script.name, line)]
        assert hits, f"no stack for {marker}\n" + fmt_stacks(doc)
        assert hits[0]["layer"] == layer and (hits[0]["count"], hits[0]["bytes"]) == (n, n * size), fmt_stacks(doc)
        assert not any(f["native"] for f in hits[0]["frames"]), fmt_stacks(doc)
