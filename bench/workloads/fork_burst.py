"""Forks N short children one after another; each builds a few hundred small objects and
leaves with os._exit (bench/fork_cost.py). The parent keeps a little per child."""
import os
import sys

n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
kept = []
for i in range(n):
    pid = os.fork()
    if pid == 0:
        junk = [(j, str(j)) for j in range(300)]
        os._exit(0 if junk else 1)
    os.waitpid(pid, 0)
    kept.append(str(i))
print("children", n)
