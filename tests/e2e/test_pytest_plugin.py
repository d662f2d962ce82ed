"""The pytest plugin (pylib/leakscope/pytest_plugin.py, docs/python-api.md) in a real pytest
session (Debian's python3-pytest) over a small test file."""
import os
import re

from conftest import BUILD, SOURCE, run_process

PYTEST = "/usr/bin/python3"

SUITE = '''\
import pytest

KEEP = []

@pytest.mark.limit_leaks("100 KB")
def test_leaks_2mb():
    for _ in range(200):
        KEEP.append(bytearray(10_000))   # line 8: the leak

@pytest.mark.limit_leaks("100 KB")
def test_clean():
    junk = [bytearray(10_000) for _ in range(200)]
    del junk

@pytest.mark.limit_memory("24 MB")
def test_over_memory():
    big = bytearray(40 * 1024 * 1024)
    del big

@pytest.mark.limit_memory("24 MB")
def test_transient_below_an_earlier_peak():   # the per-test peak, not the session's
    big = bytearray(30 * 1024 * 1024)
    del big

def test_unmarked_keeps_3mb():
    KEEP.append(bytearray(3 * 1024 * 1024))

@pytest.mark.limit_memory("24 MB")
def test_under_memory():
    small = bytearray(4 * 1024 * 1024)
    del small
'''


def session(tmp_path, args, timeout=180):
    env = dict(os.environ, PYTHONPATH=str(SOURCE / "pylib"), LEAKSCOPE_BUILD=str(BUILD))
    return run_process([PYTEST, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=tmp_path, timeout=timeout,
                       env=env)


def test_markers_fail_and_pass(tmp_path):
    (tmp_path / "test_suite.py").write_text(SUITE)
    r = session(tmp_path, ["-v", "--leakscope", "--leakscope-output", "s.lsc", "-rf", "test_suite.py"])
    out = r.out
    assert re.search(r"test_leaks_2mb FAILED", out), r.describe()
    assert re.search(r"test_clean PASSED", out), r.describe()
    assert re.search(r"test_over_memory FAILED", out), r.describe()
    assert re.search(r"test_under_memory PASSED", out), r.describe()
    # 30 MB come and go, below the 40 MB an earlier test reached: still caught.
    assert re.search(r"test_transient_below_an_earlier_peak FAILED", out), r.describe()
    assert re.search(r"limit_memory: the test's peak was 30\.[0-9]+ MiB", out), r.describe()
    # The failure names the allocating line, and how much was left.
    m = re.search(r"limit_leaks: ([0-9.]+) MiB allocated during the test is still live.*top sites: (\S+)", out)
    assert m, r.describe()
    assert 1.7 < float(m.group(1)) < 2.5, r.describe()
    assert m.group(2).endswith("test_suite.py:8"), r.describe()
    assert re.search(r"limit_memory: the test's peak was 4[0-9.]+ MiB", out), r.describe()
    assert r.returncode == 1, r.describe()
    assert (tmp_path / "s.lsc").stat().st_mode & 0o777 == 0o600
    # The summary: per test, exact (the agent's `mark`), the unmarked keeper first.
    summary = out.split("leakscope ====")[1]
    first = re.search(r"^\s*([0-9.]+) MiB left live by (\S+)$", summary, re.M)
    assert first and first.group(2) == "test_suite.py::test_unmarked_keeps_3mb", r.describe()
    assert 3.0 <= float(first.group(1)) < 3.1, r.describe()
    assert "capture: " + str(tmp_path / "s.lsc") in summary, r.describe()
    # Without --leakscope the markers are inert and everything passes.
    r = session(tmp_path, ["-q", "test_suite.py"])
    assert r.returncode == 0 and "6 passed" in r.out, r.describe()
