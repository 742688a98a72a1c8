"""tidepool: a tiny tide-table and marine-sensor toolkit.

An invented library, written as sample data for seal's ``codebase`` domain (it is never imported by seal).
It predicts tide heights from harmonic constituents, keeps a registry of tide stations, turns pressure-sensor
readings into water depths and raises alerts when the water gets too high::

    from tidepool import Station, TideTable, classify
    table = TideTable(Station("KRV", "Korrvik Harbour", 61.2, 4.9), constituents)
    level = classify(table.height_at(6.0))
"""

from .alerts import AlertLevel, AlertLog, classify
from .sensors import PressureSensor, Reading, SensorError
from .stations import Station, StationRegistry
from .tides import Constituent, TideTable

__version__ = "0.4.1"

__all__ = [
    "AlertLevel",
    "AlertLog",
    "Constituent",
    "PressureSensor",
    "Reading",
    "SensorError",
    "Station",
    "StationRegistry",
    "TideTable",
    "classify",
]
