"""A batch tool that makes several passes over its input, each building and then dropping a tree.

Models: a formatter or a type checker (black: parse, format, check equivalence, check that the
result is stable; mypy: one pass per phase) or a batch job per input. Each pass builds a tree of
nodes from the input over its share of the run, uses it, and drops it before the next pass; each
pass is reached through its own function, so every pass allocates at different stacks. The last
pass's result is still held when the program exits (printed at the very end), so live memory
rises and falls once per pass and ends high.
Expected verdict: no-leak, with a working-set finding whose size is about one pass's tree.

Usage: p15_batch_passes.py [--duration SECONDS] [--passes N]   (env DURATION too)
Prints one `summary {json}` line at the end.
"""
import json
import os
import sys
import time

from workload import arg, paced

NODE_SIZE = 1024        # bytes of payload per node
NODES_PER_TICK = 6
TICK = 0.01             # seconds

DURATION = float(arg("--duration", os.environ.get("DURATION", "8")))
PASSES = int(arg("--passes", "4"))


class Node:
    __slots__ = ("kind", "text", "children")

    def __init__(self, kind, text):
        self.kind = kind
        self.text = text
        self.children = []


def build_tree(seconds, salt):
    """The pass's tree, grown at a steady pace for `seconds`."""
    root = Node("file", bytearray(16))
    parent = root
    n = 0
    for _ in paced(seconds, TICK):
        for _ in range(NODES_PER_TICK):
            node = Node(n % 7, bytearray(NODE_SIZE))  # TREE-SITE
            node.text[:8] = (n ^ salt).to_bytes(8, "little")
            parent.children.append(node)
            if n % 50 == 49:
                parent = node
            n += 1
        scratch = [bytes(64) for _ in range(40)]  # transient work of the pass
        del scratch
    return root, n


def parse_pass(seconds):
    return build_tree(seconds, 1)


def format_pass(seconds):
    return build_tree(seconds, 2)


def check_pass(seconds):
    return build_tree(seconds, 3)


def stable_pass(seconds):
    return build_tree(seconds, 4)


STEPS = [parse_pass, format_pass, check_pass, stable_pass]
RESULT = None  # the last pass's tree, printed at exit


def main():
    global RESULT
    t0 = time.monotonic()
    per_pass = DURATION / PASSES
    nodes = []
    for i in range(PASSES):
        tree, n = STEPS[i % len(STEPS)](per_pass)
        nodes.append(n)
        if i + 1 < PASSES:
            del tree  # the next pass starts from the input again
        else:
            RESULT = tree
    elapsed = time.monotonic() - t0
    per_node = sys.getsizeof(Node(0, None)) + sys.getsizeof(bytearray(NODE_SIZE)) + 8
    print("summary " + json.dumps({
        "program": "p15_batch_passes", "passes": PASSES, "nodes_per_pass": nodes, "elapsed_s": round(elapsed, 3),
        "leak_bytes_per_s": 0, "working_set_bytes": max(nodes) * per_node}))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
