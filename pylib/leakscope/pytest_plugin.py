"""pytest plugin: `--leakscope` tracks the session with leakscope; per test, what it left live
per site, and the markers limit_leaks / limit_memory (docs/python-api.md)."""
import gc
import os
import tempfile
import shutil

import pytest

import leakscope
from leakscope import LeakscopeError
from leakscope._cli import run_json, agent_path
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
    try:
        agent_path()  # a missing agent is a usage error now, before anything is collected
    except LeakscopeError as e:
        raise pytest.UsageError(f"--leakscope: {e}") from None
    work = tempfile.mkdtemp(prefix="leakscope-pytest-")  # 0700, unpredictable name
    out = config.getoption("leakscope_output")
    config._leakscope = {"capture": os.path.abspath(out or os.path.join(work, "session.lsc")), "keep": bool(out),
                         "windows": [], "dir": work}


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtestloop(session):
    # Tracked from the first test to the last: start-up and collection are pytest's, not the
    # tests', and cost the suite nothing this way.
    state = getattr(session.config, "_leakscope", None)
    if state:
        try:
            leakscope.start(state["capture"], interval=1.0, retention=False)
        except LeakscopeError as e:
            raise pytest.UsageError(f"--leakscope: {e}") from None
    try:
        yield
    finally:
        if state and leakscope.tracking():
            leakscope.stop()


def pytest_unconfigure(config):
    state = getattr(config, "_leakscope", None)
    if state:
        if leakscope.tracking():
            leakscope.stop()
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


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    state = getattr(item.config, "_leakscope", None)
    if not state:
        yield
        return
    leak_limit, mem_limit = _mark_size(item, "limit_leaks"), _mark_size(item, "limit_memory")
    before = None
    if leak_limit is not None:
        # What the test leaves is judged per site (diff of two snapshots), after full
        # collections; gc.collect() costs ~50 ms in a pytest process, so only these tests pay.
        gc.collect()
        leakscope.flush()
        # The reader keeps one snapshot per --interval, so a flush inside it is not addressable
        # as CAPTURE@T: a copy of the capture as it is now ends at this very snapshot.
        before = os.path.join(state["dir"], "before.lsc")
        shutil.copyfile(state["capture"], before)
    # Every test: exact live bytes before and after its call, and the peak between (the
    # agent's `mark`, well under a millisecond: no snapshot, no subprocess).
    m0 = leakscope.mark()
    try:
        yield
    finally:
        if leak_limit is not None:
            gc.collect()
        m1 = leakscope.mark()
        w = {"nodeid": item.nodeid, "left_bytes": m1.live_bytes - m0.live_bytes,
             "peak_bytes": max(0, m1.peak_bytes - m0.live_bytes), "before": before}
        state["windows"].append(w)
        setattr(item, _KEY, w)
        failures = []
        if leak_limit is not None:
            leakscope.flush()
            failures += _check_leaks(state["capture"], w, leak_limit)
        if mem_limit is not None and w["peak_bytes"] > mem_limit:
            failures.append(f"limit_memory: the test's peak was {format_size(w['peak_bytes'])} above what was "
                            f"live when it started (limit {format_size(mem_limit)})")
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
    w["left_bytes"] = left  # per site: what the test allocated and left, not the net change
    if left <= limit:
        return []
    top = ", ".join(f"{_site_where(s)} (+{format_size(s['delta_bytes'])})" for s in grown[:3])
    return [f"limit_leaks: {format_size(left)} allocated during the test is still live after it "
            f"(limit {format_size(limit)}); top sites: {top}"]


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
    if state["keep"]:
        tr.write_line(f"capture: {state['capture']}  (leakscope report {state['capture']})")
    grew = sorted((w for w in state["windows"] if w["left_bytes"] > 0), key=lambda w: -w["left_bytes"])
    if not grew:
        tr.write_line("no test left memory live")
    for w in grew[: config.getoption("leakscope_top")]:
        tr.write_line(f"{format_size(w['left_bytes']):>12} left live by {w['nodeid']}")
