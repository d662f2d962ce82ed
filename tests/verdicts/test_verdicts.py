"""Every verdict right; for each leak, the top reported site is the line that created the
leaked objects, and its rate is within a factor of 2 of the program's real leak rate. Real
programs nobody here wrote (black, mypy, the standard library's tests) get no leak verdict.

The programs and what they model: README.md. The runs happen in the session fixture `runs`
(conftest.py), two at a time; each test reads one report.
"""
import pytest

from verdicts_support import (REAL_JOBS, at_line, checked_report, describe, frame_str, jobs_for, marker_line,
                              site_frame)

RATE_FACTOR = 2.0


def assert_leak(res, marker: str, layer: str, function: str = None, source=None) -> dict:
    """verdict leak; leaks[0] is at the marker line, on `layer`, with a plausible rate."""
    doc = checked_report(res)
    assert doc["verdict"] == "leak", "wrong verdict\n" + describe(res)
    assert doc["leaks"], "verdict leak but no leaks\n" + describe(res)
    top = doc["leaks"][0]
    source = source or res.job.source
    line = marker_line(source, marker)
    site = site_frame(res, top)
    assert at_line(site, source, line), \
        f"top leak site is {frame_str(site)}, want {source.name}:{line} ({marker})\n" + describe(res)
    if function is not None:
        assert function in (site.get("function") or ""), f"site function {site.get('function')!r}\n" + describe(res)
    assert top["layer"] == layer, f"top leak layer {top['layer']!r}, want {layer!r}\n" + describe(res)
    assert top["kind"] == "leak", describe(res)
    real = res.summary["leak_bytes_per_s"]
    rate = top["rate_bytes_per_s"]
    assert rate > 0, describe(res)
    assert real / RATE_FACTOR <= rate <= real * RATE_FACTOR, \
        f"top leak rate {rate:.0f} B/s, the program leaks {real:.0f} B/s\n" + describe(res)
    return doc


def assert_no_leak(res, finding: str = None, layer: str = None, retains: bool = False) -> dict:
    """verdict no-leak, no leaks; the expected finding if any. A program that does not make an
    allocator keep memory (`retains` false: run without leakscope its RSS is flat) must get no
    allocator-retention finding either."""
    doc = checked_report(res)
    assert doc["verdict"] == "no-leak", "wrong verdict\n" + describe(res)
    assert doc["leaks"] == [], "verdict no-leak but stacks judged leak\n" + describe(res)
    if not retains:
        wrong = [f"{f['layer']}: {f['text']}" for f in doc["findings"] if f["kind"] == "allocator-retention"]
        assert not wrong, f"allocator retention reported for a program that retains nothing: {wrong}\n" \
            + describe(res)
    if finding is not None:
        kinds = [(f["kind"], f["layer"]) for f in doc["findings"]]
        assert any(k == finding and (layer is None or lay == layer) for k, lay in kinds), \
            f"no {finding!r} finding{' on ' + layer if layer else ''}: {kinds}\n" + describe(res)
    return doc


# --------------------------------------------------------------------------- leaks

@pytest.mark.parametrize("job", jobs_for("p01_"))
def test_p01_request_registry(runs, job):
    assert_leak(runs.result(job), "# LEAK-SITE", "python")


@pytest.mark.parametrize("job", jobs_for("p02_"))
def test_p02_unbounded_cache(runs, job):
    assert_leak(runs.result(job), "# LEAK-SITE", "python")


@pytest.mark.parametrize("job", jobs_for("p05_"))
def test_p05_stored_exceptions(runs, job):
    """The retained objects come from four lines; the scratch buffer (LEAK-SITE) holds >95%
    of the bytes, so it must be the top (fastest) leak. Checked in two steps so a failure says
    whether leakscope blamed an unrelated line or only ranked the creating lines wrongly."""
    res = runs.result(job)
    doc = checked_report(res)
    assert doc["verdict"] == "leak", "wrong verdict\n" + describe(res)
    assert doc["leaks"], describe(res)
    src = res.job.source
    creators = {m: marker_line(src, "# " + m) for m in ("LEAK-SITE", "RAISE-SITE", "CALL-SITE", "APPEND-SITE")}
    site = site_frame(res, doc["leaks"][0])
    assert any(at_line(site, src, ln) for ln in creators.values()), \
        f"top leak site {frame_str(site)} is none of the lines that created retained objects {creators}\n" \
        + describe(res)
    assert_leak(res, "# LEAK-SITE", "python")


@pytest.mark.parametrize("job", jobs_for("p06_"))
def test_p06_asyncio_pending_tasks(runs, job):
    """Also with --cancel-at-exit (+cancel): asyncio.run cancels the tasks and waits for them,
    a teardown of a second or more at the end of the run; still a leak at the create_task line."""
    assert_leak(runs.result(job), "# LEAK-SITE", "python")


@pytest.mark.parametrize("job", jobs_for("p14_"))
def test_p14_leak_then_idle(runs, job):
    """Leaks for 7 s, then idles for 3 s: a leak at the line that builds the kept record, at
    the rate while working."""
    assert_leak(runs.result(job), "# LEAK-SITE", "python")


@pytest.mark.parametrize("job", jobs_for("p09_"))
def test_p09_ctypes_malloc(runs, job):
    res = runs.result(job)
    doc = assert_leak(res, "# LEAK-SITE", "malloc")
    assert not any(f["native"] for f in doc["leaks"][0]["frames"]), "native frames without --native\n" + describe(res)


@pytest.mark.parametrize("job", jobs_for("p10_"))
def test_p10_cext_missing_decref(runs, job):
    """The bytes objects are created inside the extension; without --native the innermost
    frame of their stack is the Python line that called encode_row()."""
    res = runs.result(job)
    doc = assert_leak(res, "# LEAK-SITE", "python")
    assert not doc["leaks"][0]["frames"][0]["native"], describe(res)


@pytest.mark.parametrize("job", jobs_for("p11_"))
def test_p11_slow_leak_under_churn(runs, job):
    res = runs.result(job)
    doc = checked_report(res)
    assert res.summary["churn_bytes_per_s"] >= 200e6, \
        f"precondition: the program churned only {res.summary['churn_bytes_per_s'] / 1e6:.0f} MB/s\n" + describe(res)
    assert_leak(res, "# LEAK-SITE", "python")
    churn = marker_line(res.job.source, "# CHURN-SITE")
    for lk in doc["leaks"]:
        assert not at_line(lk["frames"][0], res.job.source, churn), "the churn line is reported as a leak\n" \
            + describe(res)


@pytest.mark.parametrize("job", jobs_for("p12_"))
def test_p12_lost_index(runs, job):
    assert_leak(runs.result(job), "// LEAK-SITE", "malloc", function="shop::OrderBook::open")


# --------------------------------------------------------------------------- no leaks

@pytest.mark.parametrize("job", jobs_for("p03_"))
def test_p03_lru_plateau(runs, job):
    res = runs.result(job)
    doc = assert_no_leak(res, finding="plateau")
    line = marker_line(res.job.source, "# PLATEAU-SITE")
    plateaus = [s for s in doc["stacks"] if s.get("verdict") == "plateau"]
    assert any(at_line(s["frames"][0], res.job.source, line) for s in plateaus), \
        f"no stack at the cache's value line {line} judged plateau\n" + describe(res)


@pytest.mark.parametrize("job", jobs_for("p04_"))
def test_p04_gc_cycles(runs, job):
    assert_no_leak(runs.result(job))


@pytest.mark.parametrize("job", jobs_for("p07_"))
def test_p07_thread_local_churn(runs, job):
    assert_no_leak(runs.result(job))


@pytest.mark.parametrize("job", jobs_for("p08_"))
def test_p08_arena_fragmentation(runs, job):
    assert_no_leak(runs.result(job), finding="allocator-retention", layer="pymalloc", retains=True)


@pytest.mark.parametrize("job", jobs_for("p13_"))
def test_p13_native_control(runs, job):
    assert_no_leak(runs.result(job))


@pytest.mark.parametrize("job", jobs_for("p15_"))
def test_p15_batch_passes(runs, job):
    """Live memory rises and falls once per pass and ends high: a working set, reported with
    the size of one pass's tree (within a factor of 2)."""
    res = runs.result(job)
    doc = assert_no_leak(res, finding="working-set", layer="process")
    ws = [f for f in doc["findings"] if f["kind"] == "working-set"][0]
    real = res.summary["working_set_bytes"]
    assert real / RATE_FACTOR <= ws["bytes"] <= real * RATE_FACTOR, \
        f"working set {ws['bytes']:.0f} B, one pass builds {real} B\n" + describe(res)
    tree = marker_line(res.job.source, "# TREE-SITE")
    trees = [s for s in doc["stacks"] if s["frames"] and at_line(s["frames"][0], res.job.source, tree)]
    assert trees, f"the last pass's tree (line {tree}) is not among the live stacks\n" + describe(res)
    for s in trees:
        assert s.get("verdict") == "working-set", f"the last pass's tree is judged {s.get('verdict')}\n" \
            + describe(res)


# --------------------------------------------------------------------------- real programs

@pytest.mark.parametrize("job", [j.id for j in REAL_JOBS])
def test_real_program_no_leak(runs, job):
    """black, mypy and the standard library's tests on real inputs: no leak, and no stack
    judged leak."""
    assert_no_leak(runs.result(job), retains=True)


def test_black_passes_are_a_working_set(runs):
    """black --diff formats, checks equivalence and checks stability: three passes, each
    freeing what the one before built (the last still live at exit)."""
    res = runs.result("real:black")
    assert_no_leak(res, finding="working-set", layer="process", retains=True)


# --------------------------------------------------------------------------- run --fail-on-leak

@pytest.mark.parametrize("job, status", [
    ("fail-on-leak:leak", 86),          # verdict leak, the program exited 0
    ("fail-on-leak:leak-exit3", 3),     # verdict leak, but the program's own failure wins
    ("fail-on-leak:control", 0),        # no leak: the program's own status
])
def test_fail_on_leak(runs, job, status):
    res = runs.result(job)
    assert res.error is None or res.run is not None, describe(res)
    assert res.run is not None and res.run.returncode == status, \
        f"`leakscope run --fail-on-leak` exited {res.run and res.run.returncode}, want {status}\n" \
        + (res.run.describe() if res.run else "") + "\n" + describe(res)
