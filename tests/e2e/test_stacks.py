"""Readable stacks in text output: the import machinery folds into one line, the program's own
lines and the library calls next to them show, --all-frames shows every frame, and JSON keeps
every frame either way (report/stack_view.h)."""
import re

from conftest import marker_line, write_script

REGISTRY = '''\
import email

_messages = []


def _load(n):
    for i in range(n):
        text = "Subject: item %d\\nX-Id: %d\\n\\nbody of message %d\\n" % (i, i, i)
        _messages.append(email.message_from_string(text))  # MARK-LOAD


_load(20000)  # MARK-TOP
'''

APP = '''\
import time


def main():
    import registry  # MARK-IMPORT
    time.sleep(0.2)
    print("loaded", len(registry._messages))


main()
'''


def stack_blocks(text: str, section: str) -> list:
    """The stacks of one text section (from its heading to the next blank line), one string each."""
    part = text.split(section, 1)[1].split("\n\n", 1)[0]
    return ["#" + b for b in re.split(r"\n#(?=\d)", "\n" + part)[1:]]


def test_import_machinery_folds_and_own_lines_show(ls, python):
    registry = write_script(ls.workdir, "registry.py", REGISTRY)
    app = write_script(ls.workdir, "app.py", APP)
    load, top, imp = (marker_line(registry, "MARK-LOAD"), marker_line(registry, "MARK-TOP"),
                      marker_line(app, "MARK-IMPORT"))
    r = ls.run([python.path, app.name])
    assert r.returncode == 0 and "loaded 20000" in r.out, r.describe()

    folded = ls.report_raw("capture.lsc", fmt="text", limit=30)
    assert folded.returncode == 0, folded.describe()
    own = f"registry.py:{load} in _load"
    blocks = [b for b in stack_blocks(folded.out, "Live memory by allocation stack") if own in b]
    assert blocks, "no stack through " + own + "\n" + folded.out[:6000]
    for b in blocks:
        lines = b.splitlines()
        assert not lines[1].lstrip().startswith("..."), "the allocation point is not shown first\n" + b
        assert f"registry.py:{top} in <module>" in b, b
        assert f"app.py:{imp} in main" in b, "the program's import line is missing\n" + b
        assert "<frozen importlib" not in "\n".join(lines[2:]), b  # only the allocation point may be
        assert re.search(r"^      \.\.\. \d+ import-machinery frames \.\.\.$", b, re.M), b
        # the import line follows the fold, the module's top-level line precedes it
        fold = next(i for i, l in enumerate(lines) if re.fullmatch(r"      \.\.\. \d+ import-machinery frames \.\.\.", l))
        assert f"registry.py:{top} in <module>" in lines[fold - 1] and f"app.py:{imp} in main" in lines[fold + 1], b
    # the messages email's parser made (some blocks are code email imports on first use)
    messages = [b for b in blocks if "/email/" in b.splitlines()[1]]
    assert messages, "\n".join(blocks)
    for b in messages:
        assert "in message_from_string" in b, "the library function the program called is missing\n" + b
    assert any(re.search(r"^      \.\.\. \d+ library frames \.\.\.$", b, re.M) for b in messages), "\n".join(messages)
    assert "--all-frames shows every frame" in folded.out

    full = ls.cli("report", "capture.lsc", "--limit", "30", "--all-frames")
    assert full.returncode == 0, full.describe()
    blocks = [b for b in stack_blocks(full.out, "Live memory by allocation stack") if own in b]
    assert blocks, full.out[:6000]
    for b in blocks:
        assert "<frozen importlib._bootstrap>" in b and "_find_and_load" in b, b
        assert " frames ..." not in b, b
    assert "--all-frames shows every frame" not in full.out

    # JSON has every frame, with or without the flag
    j1 = ls.cli("report", "capture.lsc", "--format", "json")
    j2 = ls.cli("report", "capture.lsc", "--format", "json", "--all-frames")
    assert j1.returncode == 0 and j1.stdout == j2.stdout, j2.describe()
    assert "<frozen importlib._bootstrap>" in j1.out

    # diff folds the same way
    d = ls.cli("diff", "capture.lsc@0", "capture.lsc", "--limit", "30")
    assert d.returncode == 0, d.describe()
    grew = [b for b in stack_blocks(d.out, "Grew") if own in b]
    assert grew and all("import-machinery frames" in b and "<frozen importlib" not in "\n".join(b.splitlines()[2:])
                        for b in grew), d.out[:6000]
    d_all = ls.cli("diff", "capture.lsc@0", "capture.lsc", "--limit", "30", "--all-frames")
    assert d_all.returncode == 0, d_all.describe()
    grew = [b for b in stack_blocks(d_all.out, "Grew") if own in b]
    assert grew and all("<frozen importlib._bootstrap>" in b for b in grew), d_all.out[:6000]
