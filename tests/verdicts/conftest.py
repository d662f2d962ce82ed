"""pytest hooks and the session fixture of the verdict suite; see verdicts_support.py."""
import os
import sys
from pathlib import Path
from typing import List

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from verdicts_support import BUILD, JOBS, Runner  # noqa: E402

_SELECTED: List[str] = []


def pytest_collection_finish(session):
    """Remember which jobs the selected tests need (after -k/-m deselection), in test order,
    so that all of them can start at once."""
    for item in session.items:
        callspec = getattr(item, "callspec", None)
        job = callspec.params.get("job") if callspec else None
        if job in JOBS and job not in _SELECTED:
            _SELECTED.append(job)


@pytest.fixture(scope="session")
def runs(tmp_path_factory) -> Runner:
    exe, agent = BUILD / "leakscope", BUILD / "libleakscope_agent.so"
    if not exe.is_file() or not agent.is_file():
        pytest.fail(f"leakscope is not built in {BUILD} (set LEAKSCOPE_BUILD)")
    keep = os.environ.get("VERDICTS_WORKDIR")  # keep the captures there (for diagnosis)
    root = Path(keep) if keep else tmp_path_factory.mktemp("verdicts")
    root.mkdir(parents=True, exist_ok=True)
    runner = Runner(BUILD, root)
    # the native builds first, so the first Python runs overlap them
    for job_id in sorted(_SELECTED, key=lambda j: not JOBS[j].native):
        runner.submit(job_id)
    yield runner
    runner.close()


