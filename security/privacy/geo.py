"""Locations to coarser cells: geohash cells and square-ish grids of N metres, pure.

Both give a cell (bounds in degrees) and its centre; the transform releases the centre,
so everything inside one cell looks the same. The grid's rows are N metres of latitude;
each row's columns are N metres of longitude at the row's central latitude, so a cell is
close to N x N metres everywhere but at the poles (where a row is one cell).
"""

from __future__ import annotations

import math

BASE32 = "0123456789bcdefghjkmnpqrstuvwxyz"
METRES_PER_DEGREE = 2 * math.pi * 6_371_008.8 / 360  # mean Earth radius (IUGG)

Bounds = tuple[float, float, float, float]  # lat_min, lat_max, lon_min, lon_max


def geohash(lat: float, lon: float, precision: int) -> str:
    """The geohash of a point (``precision`` characters; 5 is about 4.9 x 4.9 km)."""
    lat_lo, lat_hi, lon_lo, lon_hi = -90.0, 90.0, -180.0, 180.0
    chars: list[str] = []
    bits = 0
    count = 0
    even = True  # geohash interleaves longitude first
    while len(chars) < precision:
        if even:
            mid = (lon_lo + lon_hi) / 2
            bit = lon >= mid
            lon_lo, lon_hi = (mid, lon_hi) if bit else (lon_lo, mid)
        else:
            mid = (lat_lo + lat_hi) / 2
            bit = lat >= mid
            lat_lo, lat_hi = (mid, lat_hi) if bit else (lat_lo, mid)
        bits = bits * 2 + int(bit)
        even = not even
        count += 1
        if count == 5:
            chars.append(BASE32[bits])
            bits = count = 0
    return "".join(chars)


def geohash_bounds(code: str) -> Bounds:
    """The cell a geohash names."""
    lat_lo, lat_hi, lon_lo, lon_hi = -90.0, 90.0, -180.0, 180.0
    even = True
    for char in code:
        value = BASE32.index(char)
        for shift in range(4, -1, -1):
            bit = (value >> shift) & 1
            if even:
                mid = (lon_lo + lon_hi) / 2
                lon_lo, lon_hi = (mid, lon_hi) if bit else (lon_lo, mid)
            else:
                mid = (lat_lo + lat_hi) / 2
                lat_lo, lat_hi = (mid, lat_hi) if bit else (lat_lo, mid)
            even = not even
    return lat_lo, lat_hi, lon_lo, lon_hi


def grid_cell(lat: float, lon: float, metres: float) -> Bounds:
    """The grid cell of ``metres`` that holds a point."""
    dlat = metres / METRES_PER_DEGREE
    row = math.floor(lat / dlat)
    lat_lo, lat_hi = row * dlat, (row + 1) * dlat
    middle = min(max((lat_lo + lat_hi) / 2, -90.0), 90.0)
    width = METRES_PER_DEGREE * math.cos(math.radians(middle))
    dlon = 360.0 if width <= 0 else min(metres / width, 360.0)
    col = math.floor((lon + 180.0) / dlon)
    lon_lo = col * dlon - 180.0
    return lat_lo, lat_hi, lon_lo, lon_lo + dlon


def centre(bounds: Bounds) -> tuple[float, float]:
    """The middle of a cell, kept on the globe (rounded to 1e-7 degrees, about 1 cm)."""
    lat_lo, lat_hi, lon_lo, lon_hi = bounds
    lat = min(max((lat_lo + lat_hi) / 2, -90.0), 90.0)
    lon = min(max((lon_lo + lon_hi) / 2, -180.0), 180.0)
    return round(lat, 7), round(lon, 7)
