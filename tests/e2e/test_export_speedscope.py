"""`leakscope export --format speedscope` (docs/exports.md, "speedscope"): a real leaking program
run under leakscope, exported, validated against the schema the speedscope npm package ships
(ajv, through tests/js/validate_speedscope.mjs), and read back."""
import json
import re
import shutil

import pytest

from conftest import INTERPRETERS, SOURCE, run_process

PY = INTERPRETERS[-1][2]  # Debian's interpreter: what users run
JS = SOURCE / "tests" / "js"
VALIDATOR = JS / "validate_speedscope.mjs"

LEAKER = '''import time
KEEP = []
def grow(n):
    for _ in range(n):
        KEEP.append(bytearray(2000))  # SPEEDSCOPE-LEAK
def main():
    t0 = time.time()
    while time.time() - t0 < 1.5:
        grow(50)
        time.sleep(0.02)
main()
'''
LEAK_LINE = 5
# A file name that breaks JSON or HTML if written unescaped.
WEIRD = 'we"ird<script>.py'
VALUES = [("inuse_space", "bytes"), ("inuse_objects", "none"), ("alloc_space", "bytes"), ("alloc_objects", "none")]


def run_leaker(ls, mode, name):
    (ls.workdir / name).write_text(LEAKER)
    r = ls.cli("run", "--mode", mode, "--interval", "0.1", "-q", "-o", "capture.lsc", "--", PY, name)
    assert r.returncode == 0, r.describe()


def export(ls, out, *extra):
    r = ls.cli("export", "capture.lsc", "--format", "speedscope", "-o", out, *extra)
    assert r.returncode == 0 and r.out == "" and r.err == "", r.describe()
    return ls.workdir / out


def validate(ls, path):
    """The real validator's verdict: (exit status, its output)."""
    node = shutil.which("node")
    assert node, "node is not installed (scripts/install-deps.sh installs it)"
    assert (JS / "node_modules" / "ajv").is_dir() and (JS / "node_modules" / "speedscope").is_dir(), \
        "tests/js/node_modules is missing: run scripts/install-deps.sh"
    r = run_process([node, VALIDATOR, path], ls.workdir, 60)
    return r.returncode, r.out + r.err


def collapsed(ls, *extra):
    r = ls.cli("export", "capture.lsc", "--format", "collapsed", *extra)
    assert r.returncode == 0, r.describe()
    stacks = {}
    for line in r.out.splitlines():
        frames, value = line.rsplit(" ", 1)
        stacks[frames] = stacks.get(frames, 0) + int(value)
    return stacks


def stacks_of(doc, profile):
    """{'layer;root;...;leaf': weight} of one profile, frames named as speedscope shows them."""
    frames = doc["shared"]["frames"]
    out = {}
    for sample, w in zip(profile["samples"], profile["weights"]):
        key = ";".join(frames[i]["name"] for i in sample)
        out[key] = out.get(key, 0) + w
    return out


def test_speedscope_export_is_valid_and_shows_the_leak(ls):
    run_leaker(ls, "events", WEIRD)
    path = export(ls, "heap.speedscope.json")
    assert path.stat().st_mode & 0o777 == 0o600
    code, said = validate(ls, path)
    assert code == 0 and said.strip() == "valid", said
    raw = path.read_text()
    doc = json.loads(raw)
    assert doc["$schema"] == "https://www.speedscope.app/file-format-schema.json"
    assert doc["exporter"] == "leakscope" and doc["activeProfileIndex"] == 0
    profiles = doc["profiles"]
    assert [(p["name"].split(":")[0], p["unit"]) for p in profiles] == VALUES, [p["name"] for p in profiles]
    frames = doc["shared"]["frames"]
    keys = [(f["name"], f.get("file"), f.get("line")) for f in frames]
    assert len(set(keys)) == len(keys), "frames are not deduplicated"
    for p in profiles:
        assert p["type"] == "sampled" and p["startValue"] == 0, p["name"]
        assert p["endValue"] == sum(p["weights"]) and all(w > 0 for w in p["weights"]), p["name"]
        assert WEIRD in p["name"], p["name"]  # the program's command line, as text

    inuse = profiles[0]
    top = max(range(len(inuse["weights"])), key=lambda i: inuse["weights"][i])
    root, leaf = frames[inuse["samples"][top][0]], frames[inuse["samples"][top][-1]]
    assert root == {"name": "python"}, root
    assert leaf["line"] == LEAK_LINE and leaf["file"].endswith(WEIRD), leaf
    assert leaf["name"].startswith("grow (") and leaf["name"].endswith(f"{WEIRD}:{LEAK_LINE})"), leaf
    assert 100 * 2000 < inuse["weights"][top] < 20000 * 2100, inuse["weights"][top]
    # The same stacks and figures as the collapsed export of the same moment.
    c = collapsed(ls)
    assert stacks_of(doc, inuse) == c
    assert inuse["endValue"] == sum(c.values())
    # Everything allocated at the leak is still live; each bytearray is two blocks there (the
    # object and its 2001-byte buffer), about 1030 bytes each.
    alloc = stacks_of(doc, profiles[2])
    objects = stacks_of(doc, profiles[1])
    leak_key = ";".join(frames[i]["name"] for i in inuse["samples"][top])
    assert alloc[leak_key] >= inuse["weights"][top]
    assert 1000 <= inuse["weights"][top] / objects[leak_key] < 1100, (inuse["weights"][top], objects[leak_key])
    # The quote is escaped in the file and comes back as the same text.
    assert 'we\\"ird<script>.py' in raw and WEIRD in leaf["name"]

    # The validator is not a rubber stamp: each broken copy is refused.
    breakages = {
        "a weight that is text": lambda d: d["profiles"][0]["weights"].__setitem__(0, "12"),
        "a unit speedscope does not know": lambda d: d["profiles"][1].__setitem__("unit", "kilobytes"),
        "no shared frames": lambda d: d.pop("shared"),
        "a frame index past the table": lambda d: d["profiles"][0]["samples"][0].append(len(frames)),
    }
    for what, breakage in breakages.items():
        broken = json.loads(raw)
        breakage(broken)
        bad = ls.workdir / "broken.json"
        bad.write_text(json.dumps(broken))
        code, said = validate(ls, bad)
        assert code == 1 and "valid" != said.strip(), (what, code, said)


def test_speedscope_export_of_an_aggregate_capture_at_a_moment(ls):
    run_leaker(ls, "aggregate", "leaker.py")
    end = json.loads(export(ls, "end.json").read_text())
    mid_path = export(ls, "mid.json", "--at", "0.6")
    code, said = validate(ls, mid_path)
    assert code == 0, said
    mid = json.loads(mid_path.read_text())
    # The last snapshot at or before 0.6 s, named in every title.
    at = re.search(r" at (\d+\.\d+) s$", mid["name"])
    assert at and 0.2 < float(at.group(1)) <= 0.6, mid["name"]
    assert all(f" at {at.group(1)} s" in p["name"] for p in mid["profiles"]), [p["name"] for p in mid["profiles"]]
    # Aggregate captures know allocations only as increases between snapshots.
    names = [p["name"] for p in end["profiles"]]
    assert ["lower bound" in n for n in names] == [False, False, True, True], names
    assert 0 < mid["profiles"][0]["endValue"] < end["profiles"][0]["endValue"] * 0.8
    assert end["profiles"][0]["endValue"] == sum(collapsed(ls).values())
    assert mid["profiles"][0]["endValue"] == sum(collapsed(ls, "--at", "0.6").values())
