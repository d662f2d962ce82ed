"""`leakscope report --format html` (docs/exports.md, "HTML"): real programs run under leakscope,
the page written, and opened in Debian's headless Chromium through playwright-core
(web/test/check_page.js), which reads back what a person would see."""
import json
import random
import shutil
import time
from pathlib import Path

import pytest

import capture_builder as cb
from conftest import INTERPRETERS, SOURCE, run_process

PY = INTERPRETERS[-1][2]  # Debian's interpreter: what users run
WEB = SOURCE / "web"
CHECK_PAGE = WEB / "test" / "check_page.js"
CHROMIUM = Path("/usr/bin/chromium")
NODE = shutil.which("node") or "/usr/bin/node"

LEAKER = '''import ctypes, time
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
KEEP = []
def fill_the_html_cache(n):
    for _ in range(n):
        KEEP.append(bytearray(3000))
def lose_native_blocks():
    for _ in range(20):
        libc.malloc(5000)  # the pointer is dropped: findleaks finds it lost
def main():
    t0 = time.time()
    while time.time() - t0 < 3.5:
        fill_the_html_cache(40)
        time.sleep(0.02)
    lose_native_blocks()
main()
'''
LEAK_LINE, LOST_LINE = 7, 10

# The leaking function's name and file are markup; a real page would run them if it ever put
# a name into innerHTML, or let one close the data's <script> element.
HOSTILE_NAME = "<script>alert(1)</script>"
HOSTILE_FILE = "</script><img src=x onerror=alert(2)>\u2028.py"
HOSTILE = '''import time
KEEP = []
def grow(n):
    for _ in range(n):
        KEEP.append(bytearray(3000))
code = grow.__code__.replace(co_name=%r, co_filename=%r)
if hasattr(code, "co_qualname"):
    code = code.replace(co_qualname=%r)
grow.__code__ = code
t0 = time.time()
while time.time() - t0 < 3.5:
    grow(40)
    time.sleep(0.02)
''' % (HOSTILE_NAME, HOSTILE_FILE, HOSTILE_NAME)


@pytest.fixture(scope="module")
def browser():
    missing = [str(p) for p in (CHROMIUM, Path(NODE), WEB / "node_modules" / "playwright-core" / "package.json")
               if not p.exists()]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: run scripts/install-deps.sh (chromium, npm ci --prefix web)")


def write_html(ls, capture="capture.lsc", out="report.html"):
    r = ls.cli("report", capture, "--format", "html", "-o", out)
    assert r.returncode == 0 and r.out == "", r.describe()
    return ls.workdir / out


def open_page(ls, html, term=""):
    shot = html.with_suffix(".png")
    r = run_process([NODE, CHECK_PAGE, html, shot, term], ls.workdir, 120)
    assert r.returncode == 0, r.describe()
    seen = json.loads(r.out)
    assert shot.stat().st_size > 10000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", shot
    # No network at all, nothing broken, nothing run from the data.
    assert seen["console_errors"] == [] and seen["page_errors"] == [], seen
    assert seen["requests"] == [] and seen["failed_requests"] == [], seen
    assert seen["dialogs"] == [], seen
    assert seen["scripts"] == 4, seen["scripts"]  # the data, d3, d3-flame-graph, leakscope.js
    return seen


def run_program(ls, source, name, *extra, status=0):
    script = ls.workdir / name
    script.write_text(source)
    r = ls.cli("run", *extra, "--interval", "0.1", "-q", "-o", "capture.lsc", "--", PY, script.name)
    assert r.returncode == status, r.describe()


def test_html_report_of_a_leaking_program(ls, browser):
    run_program(ls, LEAKER, "leaker.py", "--findleaks", status=23)  # 23: --findleaks found memory lost
    html = write_html(ls)
    assert html.stat().st_mode & 0o777 == 0o600
    seen = open_page(ls, html, "fill_the_html")
    # The answer first, in the words `report` uses.
    text = ls.report_raw("capture.lsc", fmt="text").out
    assert seen["text"]["verdict"].startswith("Verdict: LEAK"), seen["text"]
    finding = next(line for line in text.splitlines() if line.startswith("  - leak [python]: ")).split(": ", 1)[1]
    assert finding in seen["text"]["verdict"], (finding, seen["text"]["verdict"])
    # The leaking function: in the leaks section (with its stack) and in the flame graph.
    leak_frame = f"fill_the_html_cache ({ls.workdir / 'leaker.py'}:{LEAK_LINE})"
    assert leak_frame in seen["text"]["leaks"], seen["text"]["leaks"]
    assert leak_frame in seen["end"]["names"] and seen["end"]["labels"] > 0, seen["end"]
    # What keeps it alive (retention paths), and the blocks findleaks found lost at exit.
    assert "kept alive by" in seen["text"]["leaks"] and "global KEEP (list)" in seen["text"]["leaks"], seen["text"]["leaks"]
    reach = next(line for line in text.splitlines() if line.startswith("Reachability ("))
    assert reach in seen["text"]["findleaks"], (reach, seen["text"]["findleaks"])
    assert f"lose_native_blocks ({ls.workdir / 'leaker.py'}:{LOST_LINE})" in seen["text"]["findleaks"], seen["text"]["findleaks"]
    # Memory by layer over time names its layers.
    assert any(t.startswith("live Python objects") for t in seen["legend"]), seen["legend"]
    # Another moment draws another graph: less was live at the first snapshot than at the end.
    assert seen["first"]["at"] == 0 and seen["end"]["at"] > 0, (seen["first"], seen["end"])
    assert 0 <= seen["first"]["total"] < seen["end"]["total"] * 0.5, (seen["first"]["total"], seen["end"]["total"])
    assert 0 < seen["clicked"]["at"] < seen["end"]["at"], seen["clicked"]["at"]
    # Growth between the first and last moments is the leak.
    g = seen["growth"]
    assert g["view"] == "growth" and g["from"] == 0 and g["at"] == seen["end"]["at"], g
    assert leak_frame in g["names"] and g["total"] > 100 * 3000, g
    # Search finds the frame; the callers view starts from it.
    assert seen["search"]["highlighted"] >= 1 and "match" in seen["search"]["search"], seen["search"]
    assert leak_frame in seen["callers"]["names"], seen["callers"]["names"][:10]


def test_html_names_are_text_never_markup(ls, browser):
    run_program(ls, HOSTILE, "hostile.py")
    html = write_html(ls)
    raw = html.read_text()
    block = data_block(raw)
    assert "<" not in block and ">" not in block and "\u2028" not in block, block[:300]
    assert json.loads(block)["frames"].count(f"{HOSTILE_NAME} ({HOSTILE_FILE}:5)") == 1
    # The page has as many <script elements as a page without hostile names.
    assert raw.count("<script") == write_plain_page_scripts(ls), "a name added a script element"
    seen = open_page(ls, html, "alert")
    label = f"{HOSTILE_NAME} ({HOSTILE_FILE}:5)"
    assert HOSTILE_NAME in seen["text"]["leaks"], seen["text"]["leaks"]
    assert label in seen["end"]["names"], seen["end"]["names"][:10]
    assert seen["search"]["highlighted"] >= 1, seen["search"]


def data_block(page):
    """The text of the page's <script type="application/json"> element."""
    return page.split('id="leakscope-data">', 1)[1].split("</script>", 1)[0]


def write_plain_page_scripts(ls):
    """The number of `<script` in a page made from a capture without hostile names."""
    ls.workdir.joinpath("plain").mkdir()
    builder = big_capture(stacks=10, snapshots=5)
    ls.workdir.joinpath("plain", "c.lsc").write_bytes(builder)
    return write_html(ls, "plain/c.lsc", "plain/p.html").read_text().count("<script")


# --------------------------------------------------------------------------- bounds

def big_capture(stacks=10_000, snapshots=20_000, seed=7):
    """An aggregate capture (capture/format.md) of a Python program: `stacks` distinct leaf stacks
    four frames deep, a SNAPSHOT and STATS every 0.1 s; the first snapshot lists every site, the
    others change a few, and one site grows all along."""
    rnd = random.Random(seed)
    fanout = max(2, round(stacks ** 0.25 + 0.5))
    d = bytearray()
    d += cb.rec("INFO", cb.string("argv"), cb.string("python3\0big_service.py"))
    d += cb.rec("INFO", cb.string("python_version"), cb.string("3.11.2"))
    d += cb.rec("INFO", cb.string("interval_ns"), cb.string("100000000"))
    next_id = 1
    leaves = []
    level = [0]  # stack ids of the previous level (0: the root)
    for depth in range(4):
        nxt = []
        for parent in level:
            for k in range(fanout):
                if depth == 3 and len(leaves) >= stacks:
                    break
                i = next_id
                name = f"handler_{depth}_{i:05d}" if depth == 3 else f"layer{depth}_step_{k}_{i}"
                d += cb.rec("CODE", cb.varint(i), cb.varint(10 + k), bytes([11]), cb.string(b""),
                            cb.string(f"app/pkg_{depth}/mod_{i % 97}.py"), cb.string(name))
                d += cb.rec("FRAME_PY", cb.varint(i), cb.varint(0))
                d += cb.rec("STACK", cb.varint(parent), cb.varint(i))
                next_id += 1
                (leaves if depth == 3 else nxt).append(i)
        level = nxt
    assert len(leaves) == stacks, (len(leaves), stacks)
    values = {s: rnd.randrange(1000, 100_000) for s in leaves}
    grower = leaves[len(leaves) // 2]
    live = sum(values.values())
    for n in range(snapshots):
        ns = (n + 1) * 100_000_000
        changed = leaves if n == 0 else sorted({rnd.choice(leaves) for _ in range(3)} | {grower})
        entries = bytearray()
        prev = 0
        for s in changed:
            if n:
                old = values[s]
                values[s] = values[s] + 4096 if s == grower else rnd.randrange(1000, 100_000)
                live += values[s] - old
            key = s * 4
            entries += cb.svarint(key - prev) + cb.varint(values[s]) + cb.varint(values[s] // 1000 + 1)
            prev = key
        d += cb.rec("SNAPSHOT", cb.varint(ns), cb.varint(live), cb.varint(live), cb.varint(n * 100),
                    cb.varint(n * 100_000), cb.varint(n * 100), cb.varint(len(changed))) + entries
        d += cb.rec("STATS", cb.varint(ns), cb.varint(live + 50_000_000), cb.varint(live + 40_000_000),
                    cb.varint(10_000_000), cb.varint(live), cb.varint(1_000_000), cb.varint(0), cb.varint(0), cb.varint(1))
    d += cb.rec("STOP", cb.varint((snapshots + 1) * 100_000_000), cb.string("exit"))
    raw = cb.section(cb.STREAM_D, bytes(d))
    return cb.header(flags=2, version=2) + cb.chunk(raw, 0)


def test_html_page_of_a_big_capture_is_bounded(ls, browser):
    t0 = time.monotonic()
    (ls.workdir / "big.lsc").write_bytes(big_capture())
    t1 = time.monotonic()
    html = write_html(ls, "big.lsc", "big.html")
    t2 = time.monotonic()
    size = html.stat().st_size
    seen = open_page(ls, html, "handler_3")
    load = seen["timing"]["first_render_ms"]
    print(f"\nbig capture (10,000 stacks, 20,000 snapshots): generated in {t1 - t0:.1f} s, "
          f"{(ls.workdir / 'big.lsc').stat().st_size / 1e6:.1f} MB; report --format html {t2 - t1:.1f} s; "
          f"page {size / 1e6:.2f} MB; Chromium load event {seen['timing']['load_event_ms']:.0f} ms, "
          f"first render {load:.0f} ms")
    assert size < 10_000_000, size
    assert load < 2000, seen["timing"]
    # The bounds hold, and the page still draws the growing site and the others summed.
    doc = json.loads(data_block(html.read_text()))
    assert len(doc["history"]["t_s"]) <= 60 and doc["history"]["snapshots"] >= 19_000, doc["history"]["snapshots"]
    assert len(doc["history"]["sites"]) <= 500 and doc["history"]["other_sites"] >= 9_000
    assert len(doc["timeline"]["t_s"]) <= 1000 and doc["timeline"]["points"] >= 19_000
    assert any(n.startswith("(") and "smaller sites" in n for n in seen["end"]["names"]), seen["end"]["names"][:5]
    assert seen["first"]["total"] != seen["end"]["total"]
    assert seen["search"]["highlighted"] >= 1
