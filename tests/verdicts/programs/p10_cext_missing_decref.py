"""A C extension function that returns a new object with one reference too many.

Models: the classic missing Py_DECREF in hand-written extension code (p10_refleak.c): the
bytes object encode_row() returns can never be freed. The Python code is correct.
Without --native, the innermost frame of the blocks the extension allocates is the Python
line that called it. Expected verdict: leak; site = that calling line (LEAK-SITE).

Usage: p10_cext_missing_decref.py [--duration SECONDS] [--ext-dir DIR]   (env DURATION too)
Without --ext-dir the extension is compiled (gcc) into a temporary directory first.
"""
import json
import os
import subprocess
import sys
import sysconfig
import tempfile
import time

from workload import arg, paced

ROW_SIZE = 2048
ROWS_PER_TICK = 2
TICK = 0.01
HERE = os.path.dirname(os.path.abspath(__file__))


DURATION = float(arg("--duration", os.environ.get("DURATION", "8")))


def build_extension(outdir):
    so = os.path.join(outdir, "p10_refleak" + sysconfig.get_config_var("EXT_SUFFIX"))
    subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-g", "-I" + sysconfig.get_paths()["include"],
                    os.path.join(HERE, "p10_refleak.c"), "-o", so], check=True, stdin=subprocess.DEVNULL)
    return outdir


EXT_DIR = arg("--ext-dir", None) or build_extension(tempfile.mkdtemp(prefix="p10_refleak_"))
sys.path.insert(0, EXT_DIR)
import p10_refleak  # noqa: E402



def export(i):
    row = p10_refleak.encode_row(ROW_SIZE, i)  # LEAK-SITE
    return row[0] + row[-1]


def main():
    t0 = time.monotonic()
    n = 0
    for _ in paced(DURATION, TICK):
        for _ in range(ROWS_PER_TICK):
            export(n)
            n += 1
    elapsed = time.monotonic() - t0
    row_bytes = sys.getsizeof(p10_refleak.encode_row(ROW_SIZE, 0))
    print("summary " + json.dumps({
        "program": "p10_cext_missing_decref", "rows": n, "elapsed_s": round(elapsed, 3),
        "leak_bytes_per_s": n * row_bytes / elapsed}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
