#!/usr/bin/env python3
"""Instructions leakscope adds per allocation + free (issue 14), counted by callgrind, which
is stable on a noisy machine where timings are not.

    python3 bench/callgrind_pair.py [--pairs 100000,200000] [--mode aggregate,events,sampled]
                                    [--python /usr/bin/python3]

Runs each workload at two sizes, plain and under `leakscope run`, all under
`valgrind --tool=callgrind --trace-children=yes` (the leakscope CLI, the program and the agent's
writer thread are all counted), and prints the slope: (Ir at the larger size - Ir at the
smaller) / (the difference in allocation+free pairs), plain and tracked, and their difference,
which is what tracking costs per pair with every fixed cost (start-up, the final snapshot,
the report the CLI does not make here) taken out. Workloads:
  native  bench/workloads/native_loop.cpp: malloc + free of 16-520 bytes (one pair per iteration)
  python  bench/workloads/alloc_heavy.py: a small dict, list, tuple and str built and dropped
          per iteration (about 9 allocation + free pairs per iteration at the OBJ/MEM layers)
Standard library only.
"""
from __future__ import annotations

import argparse
import glob
import os
import re
import subprocess
import sys
import tempfile

from run import DEFAULT_LEAKSCOPE, SAMPLE_RATE, WORKLOAD_DIR, build_native_loop  # bench/ is this script's directory

DEBIAN_PYTHON = "/usr/bin/python3"
PAIRS_PER_ITERATION = {"native": 1, "python": 9}
MODES = {"aggregate": [], "events": ["--mode", "events"], "sampled": ["--sample-rate", str(SAMPLE_RATE)],
         "native-stacks": ["--native"]}


def instructions(argv: list[str]) -> int:
    """Ir of the whole process tree of argv under callgrind (every out file summed)."""
    with tempfile.TemporaryDirectory(prefix="leakscope-cg-") as d:
        cmd = ["valgrind", "--tool=callgrind", "--trace-children=yes", f"--callgrind-out-file={d}/cg.%p",
               "--dump-instr=no", "--collect-jumps=no", *argv]
        p = subprocess.run(cmd, cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if p.returncode != 0:
            raise SystemExit(f"failed ({p.returncode}): {' '.join(argv)}\n{p.stderr.decode()[-800:]}")
        total = 0
        for f in glob.glob(os.path.join(d, "cg.*")):
            with open(f) as fh:
                for line in fh:
                    m = re.match(r"(?:summary|totals):\s+(\d+)", line)
                    if m:
                        total += int(m.group(1))
                        break
        return total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100000,200000", help="two iteration counts per workload")
    ap.add_argument("--modes", default="aggregate,events,sampled", help=f"of {','.join(MODES)}")
    ap.add_argument("--workloads", default="native,python")
    ap.add_argument("--python", default=DEBIAN_PYTHON)
    ap.add_argument("--leakscope", default=DEFAULT_LEAKSCOPE)
    a = ap.parse_args()
    n1, n2 = (int(x) for x in a.sizes.split(","))
    native = build_native_loop()
    cap = tempfile.mkdtemp(prefix="leakscope-cg-cap-")
    print(f"callgrind instructions per allocation+free pair (slope between {n1:,} and {n2:,} iterations)")
    print(f"{'workload':<8} {'mode':<14} {'plain Ir/pair':>14} {'tracked Ir/pair':>16} {'added Ir/pair':>14}")
    for w in a.workloads.split(","):
        def prog(n: int) -> list[str]:
            return [native, str(n)] if w == "native" else [a.python, os.path.join(WORKLOAD_DIR, "alloc_heavy.py"), str(n)]
        pairs = (n2 - n1) * PAIRS_PER_ITERATION[w]
        plain = (instructions(prog(n2)) - instructions(prog(n1))) / pairs
        for mode in a.modes.split(","):
            def tracked(n: int) -> list[str]:
                out = os.path.join(cap, f"{w}-{mode}-{n}.lsc")
                if os.path.exists(out):
                    os.unlink(out)
                return [a.leakscope, "run", "-q", "--no-retention", *MODES[mode], "-o", out, "--", *prog(n)]
            t = (instructions(tracked(n2)) - instructions(tracked(n1))) / pairs
            print(f"{w:<8} {mode:<14} {plain:14.1f} {t:16.1f} {t - plain:14.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
