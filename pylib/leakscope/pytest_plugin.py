"""pytest plugin: `--leakscope` tracks the session with leakscope; per test, what it left live
per site, and the markers limit_leaks / limit_memory (docs/python-api.md)."""
import gc
import os
import tempfile
import shutil

import pytest

import leakscope
from leakscope import LeakscopeError
from leakscope._cli import run_json
from leakscope.sizes import parse_size, format_size

_KEY = "_leakscope_window"


def pytest_addoption(parser):
    g = parser.getgroup("leakscope")
    g.addoption("--leakscope", action="store_true", default=False,
                help="track the session with leakscope: per-test leaks and the limit_leaks/limit_memory markers")
    g.addoption("--leakscope-output", default=None, help="capture file to write (a new file; default: a fresh temp dir)")
    g.addoption("--leakscope-top", type=int, default=5, help="tests listed in the summary of what tests left live")


def pytest_configure(config):
    config.addinivalue_line("markers", "limit_leaks(size): fail when more than size, allocated during the test, "
                            "is still live after it (needs --leakscope)")
    config.addinivalue_line("markers", "limit_memory(size): fail when the test's peak of memory allocated during "
                            "it exceeds size (needs --leakscope)")
    if not config.getoption("leakscope"):
        return
    work = tempfile.mkdtemp(prefix="leakscope-pytest-")  # 0700, unpredictable name
    out = config.getoption("leakscope_output") or os.path.join(work, "session.lsc")
    try:
        leakscope.start(out, interval=1.0, retention=False)
    except LeakscopeError as e:
        raise pytest.UsageError(f"--leakscope: {e}") from None
    config._leakscope = {"capture": os.path.abspath(out), "windows": [], "dir": work}


def pytest_unconfigure(config):
    state = getattr(config, "_leakscope", None)
    if state and leakscope.tracking():
        leakscope.stop()
    if state:
        shutil.rmtree(state["dir"], ignore_errors=True)


def _mark_size(item, name):
    m = item.get_closest_marker(name)
    if m is None:
        return None
    if len(m.args) != 1:
        raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.{name} takes one size, e.g. \"100 KB\"")
    try:
        return parse_size(m.args[0])
    except ValueError as e:
        raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.{name}: {e}") from None


def _moment(collect):
    """A snapshot now, after a full collection if asked; returns its time on the capture's clock.
    gc.collect() costs ~50 ms in a pytest process, so only marked tests pay it."""
    if collect:
        gc.collect()
    leakscope.flush()
    return leakscope.elapsed()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    state = getattr(item.config, "_leakscope", None)
    if not state:
        yield
        return
    leak_limit, mem_limit = _mark_size(item, "limit_leaks"), _mark_size(item, "limit_memory")
    marked = leak_limit is not None or mem_limit is not None
    # Unmarked tests share one snapshot per boundary: the previous test's "after" is this
    # one's "before" (what lies between is fixture teardown and set-up).
    t1 = _moment(True) if marked or state.get("last") is None else state["last"]
    before = None
    if marked:
        # The reader keeps one snapshot per --interval, so a flush inside it is not addressable
        # as CAPTURE@T: a copy of the capture as it is now ends at this very snapshot.
        before = os.path.join(state["dir"], "before.lsc")
        shutil.copyfile(state["capture"], before)
    try:
        yield
    finally:
        t2 = state["last"] = _moment(marked)
        w = {"nodeid": item.nodeid, "t1": t1, "t2": t2, "before": before}
        state["windows"].append(w)
        setattr(item, _KEY, w)
        failures = []
        if leak_limit is not None:
            failures += _check_leaks(state["capture"], w, leak_limit)
        if mem_limit is not None:
            failures += _check_memory(state["capture"], w, mem_limit)
        w["failures"] = failures


def _site_where(site):
    for f in site["frames"]:  # innermost first: the line that allocated
        if f.get("file") and f.get("line") and not f.get("native"):
            return f"{f['file']}:{f['line']}"
    for f in site["frames"]:
        if f.get("file"):
            return f"{f['file']}:{f.get('line') or '?'}"
    f = site["frames"][0] if site["frames"] else {}
    return f.get("function") or f.get("module") or "?"


def _diff(capture, w, limit=10):
    # B is the capture's end, i.e. the snapshot just flushed: a time read after the flush's
    # reply can be more than diff's 10 ms slack past that snapshot when writing it was slow.
    return run_json(["diff", w["before"], capture, "--limit", str(limit)])


def _check_leaks(capture, w, limit):
    d = _diff(capture, w)
    grown = [s for s in d["sites"] if s["delta_bytes"] > 0]
    left = sum(s["delta_bytes"] for s in grown)
    w["left_bytes"] = left
    if left <= limit:
        return []
    top = ", ".join(f"{_site_where(s)} (+{format_size(s['delta_bytes'])})" for s in grown[:3])
    return [f"limit_leaks: {format_size(left)} allocated during the test is still live after it "
            f"(limit {format_size(limit)}); top sites: {top}"]


def _check_memory(capture, w, limit):
    # The capture's running peak: if it rose during the test, the test reached it (exact);
    # otherwise only what the test still holds at its end is seen (docs/python-api.md).
    t1, t2 = leakscope.report(w["before"])["totals"], leakscope.report(capture)["totals"]
    high = t2["peak_bytes"] if t2["peak_bytes"] > t1["peak_bytes"] else t2["live_bytes"]
    peak = max(0, high - t1["live_bytes"])
    w["peak_bytes"] = peak
    if peak <= limit:
        return []
    return [f"limit_memory: the test's peak was {format_size(peak)} above what was live when it started "
            f"(limit {format_size(limit)})"]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    w = getattr(item, _KEY, None)
    if call.when != "call" or not w or not w.get("failures") or not rep.passed:
        return
    rep.outcome = "failed"
    rep.longrepr = "\n".join(w["failures"])


def pytest_terminal_summary(terminalreporter, config):
    state = getattr(config, "_leakscope", None)
    if not state or not state["windows"]:
        return
    tr = terminalreporter
    tr.section("leakscope")
    tr.write_line(f"capture: {state['capture']}  (leakscope report {state['capture']})")
    try:
        if leakscope.tracking():
            leakscope.flush()
        tl = leakscope.report(state["capture"])["timeline"]
    except LeakscopeError as e:
        tr.write_line(f"no per-test summary: {e}")
        return

    def live_at(t):
        v = [live for ts, live in zip(tl["t_s"], tl["live"]) if ts <= t + 1e-9]
        return v[-1] if v else 0

    grew = sorted(((live_at(w["t2"]) - live_at(w["t1"]), w) for w in state["windows"]), key=lambda x: -x[0])
    grew = [(g, w) for g, w in grew if g > 0][: config.getoption("leakscope_top")]
    if not grew:
        tr.write_line("no test left memory live")
    for g, w in grew:
        tr.write_line(f"{format_size(g):>12} left live by {w['nodeid']}")
