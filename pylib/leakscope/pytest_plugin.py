"""pytest plugin: `--leakscope` tracks the session with leakscope; per test, what it left live
per site, and the markers limit_leaks / limit_memory (docs/python-api.md)."""
import gc
import os
import tempfile
import threading

import pytest

import leakscope
from leakscope import LeakscopeError
from leakscope._cli import run_json
from leakscope.sizes import parse_size, format_size

_KEY = "_leakscope_window"
_SAMPLE_EVERY_S = 0.01  # limit_memory tests: a snapshot this often while they run


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
    out = config.getoption("leakscope_output")
    if not out:
        out = os.path.join(tempfile.mkdtemp(prefix="leakscope-pytest-"), "session.lsc")
    try:
        leakscope.start(out, interval=1.0, retention=False)
    except LeakscopeError as e:
        raise pytest.UsageError(f"--leakscope: {e}") from None
    config._leakscope = {"capture": os.path.abspath(out), "windows": []}


def pytest_unconfigure(config):
    state = getattr(config, "_leakscope", None)
    if state and leakscope.tracking():
        leakscope.stop()


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


def _moment():
    """A snapshot now, after a full collection; returns its time on the capture's clock."""
    gc.collect()
    leakscope.flush()
    return leakscope.elapsed()


class _Sampler(threading.Thread):
    """Asks for a snapshot every _SAMPLE_EVERY_S while a limit_memory test runs."""

    def __init__(self):
        super().__init__(daemon=True, name="leakscope-sampler")
        self.done = threading.Event()

    def run(self):
        while not self.done.wait(_SAMPLE_EVERY_S):
            try:
                leakscope.flush()
            except LeakscopeError:
                return


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    state = getattr(item.config, "_leakscope", None)
    if not state:
        yield
        return
    leak_limit, mem_limit = _mark_size(item, "limit_leaks"), _mark_size(item, "limit_memory")
    t1 = _moment()
    sampler = _Sampler() if mem_limit is not None else None
    if sampler:
        sampler.start()
    try:
        yield
    finally:
        if sampler:
            sampler.done.set()
            sampler.join()
        t2 = _moment()
        w = {"nodeid": item.nodeid, "t1": t1, "t2": t2}
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
    return run_json(["diff", f"{capture}@{w['t1']:.6f}", f"{capture}@{w['t2']:.6f}", "--limit", str(limit)])


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
    r = leakscope.report(capture)
    tl = r["timeline"]
    before = [live for t, live in zip(tl["t_s"], tl["live"]) if t <= w["t1"] + 1e-9]
    base = before[-1] if before else 0
    during = [live for t, live in zip(tl["t_s"], tl["live"]) if w["t1"] < t <= w["t2"] + 1e-9]
    high = max(during, default=base)
    tot = r["totals"]
    if w["t1"] < tot.get("peak_time_s", -1) <= w["t2"] + 1e-9:
        high = max(high, tot["peak_bytes"])  # the running peak rose during the test: exact
    peak = max(0, high - base)
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
