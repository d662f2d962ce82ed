"""Size strings as pytest-memray writes them: "100 KB", "24 MB", "1.5 MiB", "512" (bytes).
KB/MB/GB/TB and KiB/MiB/GiB/TiB all count in 1024s, as pytest-memray's do; case is ignored."""
import re

_UNITS = {"": 1, "b": 1, "kb": 1 << 10, "kib": 1 << 10, "mb": 1 << 20, "mib": 1 << 20,
          "gb": 1 << 30, "gib": 1 << 30, "tb": 1 << 40, "tib": 1 << 40}


def parse_size(text):
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([A-Za-z]*)\s*", str(text))
    if not m or m.group(2).lower() not in _UNITS:
        raise ValueError(f"not a size: {text!r} (write e.g. \"100 KB\", \"24 MB\", \"1.5 MiB\")")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def format_size(n):
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
