"""Pressure sensors moored on the sea floor: raw pressure in, water depth out."""

from __future__ import annotations

from dataclasses import dataclass

GRAVITY = 9.80665
"""Standard gravity, m/s^2."""

SEAWATER_DENSITY = 1025.0
ATMOSPHERIC_KPA = 101.325
MAX_CALIBRATION_OFFSET_KPA = 2.5


class SensorError(RuntimeError):
    """A sensor returned no usable value."""


class CalibrationError(SensorError):
    """A calibration offset is out of range."""


@dataclass(frozen=True)
class Reading:
    """One sample: when (hours since the epoch), which sensor, and the depth in metres."""

    hours: float
    sensor_id: str
    depth_m: float
    quality: str = "good"


def depth_from_pressure(pressure_kpa: float, density: float = SEAWATER_DENSITY,
                        atmospheric_kpa: float = ATMOSPHERIC_KPA) -> float:
    """Hydrostatic depth in metres of water above a sensor that measures absolute pressure."""
    if density <= 0:
        raise ValueError("density must be positive")
    return max(pressure_kpa - atmospheric_kpa, 0.0) * 1000 / (density * GRAVITY)


class PressureSensor:
    """A sensor with a calibration offset; ``source`` returns raw pressures in kPa (or None)."""

    def __init__(self, sensor_id: str, source, offset_kpa: float = 0.0, retries: int = 3) -> None:
        self.sensor_id = sensor_id
        self.source = source
        self.offset_kpa = offset_kpa
        self.retries = retries

    def calibrate(self, reference_kpa: float, measured_kpa: float) -> float:
        """Set the offset so ``measured_kpa`` reads as ``reference_kpa``; returns the new offset."""
        offset = reference_kpa - measured_kpa
        if abs(offset) > MAX_CALIBRATION_OFFSET_KPA:
            raise CalibrationError(f"offset {offset:.2f} kPa is out of range")
        self.offset_kpa = offset
        return offset

    def read(self, hours: float) -> Reading:
        """One reading, retrying when the source returns nothing."""
        for _ in range(self.retries):
            raw = self.source()
            if raw is not None:
                depth = depth_from_pressure(raw + self.offset_kpa)
                return Reading(hours, self.sensor_id, depth)
        raise SensorError(f"sensor {self.sensor_id} returned no value after {self.retries} tries")
