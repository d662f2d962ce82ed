"""Helpers shared by the end-to-end suite (tests/e2e) and the verdict suite (tests/verdicts).
Each suite's conftest puts this directory on sys.path."""
from pathlib import Path


def marker_line(path: Path, marker: str) -> int:
    """1-based number of the only line of `path` that contains `marker`."""
    hits = [i for i, line in enumerate(Path(path).read_text().splitlines(), 1) if marker in line]
    assert len(hits) == 1, f"marker {marker!r} found on lines {hits} of {path}"
    return hits[0]


def frame_str(f: dict) -> str:
    """function@file:line of a report frame ([n] when native), for assertion messages."""
    where = f"{Path(f['file']).name}:{f['line']}" if f.get("file") else (f.get("address") or "?")
    return f"{(f.get('function') or '?')[:60]}@{where}{'[n]' if f.get('native') else ''}"
