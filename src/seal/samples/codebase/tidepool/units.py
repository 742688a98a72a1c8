"""Length and pressure units used across tidepool; everything is stored in metres and kilopascals."""

from __future__ import annotations

FEET_PER_METRE = 3.28084
"""How many international feet make one metre."""

KPA_PER_PSI = 6.894757
"""Kilopascals in one pound-force per square inch."""

LENGTH_UNITS = ("m", "cm", "ft")
PRESSURE_UNITS = ("kPa", "hPa", "psi")

_TO_METRES = {"m": 1.0, "cm": 0.01, "ft": 1 / FEET_PER_METRE}
_TO_KPA = {"kPa": 1.0, "hPa": 0.1, "psi": KPA_PER_PSI}


def to_metres(value: float, unit: str = "m") -> float:
    """Convert a length to metres.

    Raises:
        ValueError: when ``unit`` is not one of ``LENGTH_UNITS``.
    """
    if unit not in _TO_METRES:
        raise ValueError(f"unknown length unit {unit!r}; expected one of {', '.join(LENGTH_UNITS)}")
    return value * _TO_METRES[unit]


def from_metres(metres: float, unit: str = "ft") -> float:
    """Convert a length in metres to ``unit``."""
    if unit not in _TO_METRES:
        raise ValueError(f"unknown length unit {unit!r}")
    return metres / _TO_METRES[unit]


def to_kpa(value: float, unit: str = "hPa") -> float:
    """Convert a pressure to kilopascals."""
    try:
        factor = _TO_KPA[unit]
    except KeyError:
        raise LookupError(f"unknown pressure unit {unit!r}") from None
    return value * factor


def format_length(metres: float, unit: str = "m", precision: int = 2):
    """Render a length for a tide table.

    Returns:
        str: the length in ``unit`` followed by its symbol, e.g. ``"4.92 ft"``.
    """
    return f"{from_metres(metres, unit) if unit != 'm' else metres:.{precision}f} {unit}"
