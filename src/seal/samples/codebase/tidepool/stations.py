"""Tide stations: where a tide table applies, and a registry to look them up by id or position."""

from __future__ import annotations

import math
from dataclasses import dataclass

EARTH_RADIUS_KM = 6371.0
MAX_STATION_ID_LENGTH = 8


@dataclass(frozen=True)
class Station:
    """A tide gauge: a short id, a display name and its position in decimal degrees."""

    station_id: str
    name: str
    latitude: float
    longitude: float
    timezone: str = "UTC"

    def distance_km(self, latitude: float, longitude: float) -> float:
        """Great-circle (haversine) distance from this station to a point."""
        phi1, phi2 = math.radians(self.latitude), math.radians(latitude)
        dphi = phi2 - phi1
        dlmb = math.radians(longitude - self.longitude)
        a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
        return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(a))


class StationRegistry:
    """Stations by id, in the order they were added."""

    def __init__(self, stations: list[Station] | None = None, strict: bool = True) -> None:
        self.strict = strict
        self._by_id: dict[str, Station] = {}
        for station in stations or []:
            self.add(station)

    def __len__(self) -> int:
        return len(self._by_id)

    def add(self, station: Station) -> None:
        if len(station.station_id) > MAX_STATION_ID_LENGTH:
            raise ValueError(f"station id {station.station_id!r} is too long")
        key = station.station_id.upper()
        if self.strict and key in self._by_id:
            raise KeyError(f"duplicate station id {station.station_id!r}")
        self._by_id[key] = station

    def get(self, station_id: str) -> Station:
        """The station with this id (ids are case-insensitive)."""
        station = self._by_id.get(station_id.upper())
        if station is None:
            raise LookupError(f"no station {station_id!r}")
        return station

    def nearest(self, latitude: float, longitude: float, max_km: float = 50.0) -> Station:
        """The closest station within ``max_km`` of a point."""
        if not self._by_id:
            raise RuntimeError("the registry is empty")
        best = min(self._by_id.values(), key=lambda s: s.distance_km(latitude, longitude))
        if best.distance_km(latitude, longitude) > max_km:
            raise LookupError(f"no station within {max_km} km")
        return best
