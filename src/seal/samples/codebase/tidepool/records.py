"""Reading and writing sensor records as delimited text, one reading per line."""

from __future__ import annotations

from pathlib import Path

from .sensors import Reading
from .units import to_metres

HEADER = "hours,sensor,depth,unit"
QUALITY_FLAGS = ("good", "suspect", "bad")


def parse_record(line: str, sep: str = ",") -> Reading:
    """A reading from one line ``hours,sensor,depth,unit`` (the unit is optional: metres)."""
    fields = [f.strip() for f in line.split(sep)]
    if len(fields) not in (3, 4):
        raise ValueError(f"expected 3 or 4 fields, got {len(fields)}")
    hours, sensor_id, depth = fields[:3]
    unit = fields[3] if len(fields) == 4 else "m"
    return Reading(float(hours), sensor_id, to_metres(float(depth), unit))


def format_record(reading: Reading, sep: str = ",", precision: int = 3) -> str:
    return sep.join([f"{reading.hours:g}", reading.sensor_id, f"{reading.depth_m:.{precision}f}", "m"])


def load_records(path: str | Path, skip_bad: bool = False, encoding: str = "utf-8") -> list[Reading]:
    """Every reading in a file; the header line is optional and blank lines are skipped."""
    readings = []
    lines = Path(path).read_text(encoding=encoding).splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.strip() == HEADER:
            continue
        try:
            readings.append(parse_record(line))
        except ValueError as exc:
            if not skip_bad:
                raise ValueError(f"{path}:{number}: {exc}") from None
    return readings


def save_records(path: str | Path, readings: list[Reading], precision: int = 3) -> int:
    """Write the readings with a header line; returns how many were written."""
    if any(r.quality not in QUALITY_FLAGS for r in readings):
        raise ValueError("a reading has an unknown quality flag")
    text = "\n".join([HEADER] + [format_record(r, precision=precision) for r in readings])
    Path(path).write_text(text + "\n", encoding="utf-8")
    return len(readings)
