#!/usr/bin/env python3
"""Vendor the dashboard's JavaScript libraries and its offline world outline from npm.

    python3 scripts/vendor-dashboard.py

``npm pack`` fetches each pinned package into a temporary directory (nothing is installed,
no install script runs); the files the page loads and each package's licence are copied
into ``analytics/dashboard/static/vendor/``. The page then needs no build step, no CDN
and no network at run time. Re-run it after changing a version below; commit the result.

* uPlot (MIT): the plots. Leaflet (BSD-2-Clause): the map.
* world-atlas (ISC; its data is Natural Earth's, public domain): ``land-110m.json``, a
  TopoJSON file, is decoded here into ``world-land.geojson`` (coordinates rounded to 0.1
  degree), the outline layer the map shows when no tile server can be reached.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENDOR = ROOT / "analytics" / "dashboard" / "static" / "vendor"

# package, version, {file in the package: name under vendor/<package>/}
PACKAGES: list[tuple[str, str, dict[str, str]]] = [
    ("uplot", "1.6.31", {
        "dist/uPlot.iife.min.js": "uPlot.iife.min.js",
        "dist/uPlot.min.css": "uPlot.min.css",
        "LICENSE": "LICENSE",
    }),
    ("leaflet", "1.9.4", {
        "dist/leaflet.js": "leaflet.js",
        "dist/leaflet.css": "leaflet.css",
        "dist/images/layers.png": "images/layers.png",
        "dist/images/layers-2x.png": "images/layers-2x.png",
        "dist/images/marker-icon.png": "images/marker-icon.png",
        "dist/images/marker-icon-2x.png": "images/marker-icon-2x.png",
        "dist/images/marker-shadow.png": "images/marker-shadow.png",
        "LICENSE": "LICENSE",
    }),
    ("world-atlas", "2.0.2", {"LICENSE": "LICENSE"}),
]


def _pack(name: str, version: str, into: Path) -> Path:
    """The package's tarball, from the npm registry (``npm pack``: no install, no script)."""
    out = subprocess.run(["npm", "pack", "--silent", f"{name}@{version}"], cwd=into, check=True,
                         capture_output=True, text=True).stdout.strip().splitlines()[-1]
    return into / out


def _topology_to_geojson(topology: dict, name: str, digits: int = 1) -> dict:
    """A TopoJSON object's (Multi)Polygons as one GeoJSON FeatureCollection: arcs are
    delta-encoded and quantized (the TopoJSON specification, section 2.1.3)."""
    scale, translate = topology["transform"]["scale"], topology["transform"]["translate"]
    arcs = []
    for arc in topology["arcs"]:
        x = y = 0
        points = []
        for dx, dy in arc:
            x, y = x + dx, y + dy
            points.append([round(x * scale[0] + translate[0], digits), round(y * scale[1] + translate[1], digits)])
        arcs.append(points)

    def ring(indexes: list[int]) -> list[list[float]]:
        points: list[list[float]] = []
        for index in indexes:
            arc = arcs[index] if index >= 0 else arcs[~index][::-1]
            points.extend(arc if not points else arc[1:])
        return points

    def polygon(rings: list[list[int]]) -> list[list[list[float]]]:
        return [ring(r) for r in rings]

    features = []
    for geometry in topology["objects"][name]["geometries"]:
        if geometry["type"] == "Polygon":
            coordinates = polygon(geometry["arcs"])
        elif geometry["type"] == "MultiPolygon":
            coordinates = [polygon(p) for p in geometry["arcs"]]
        else:
            continue
        features.append({"type": "Feature", "properties": {},
                         "geometry": {"type": geometry["type"], "coordinates": coordinates}})
    return {"type": "FeatureCollection", "features": features}


def main() -> int:
    if shutil.which("npm") is None:
        print("vendor-dashboard: npm is needed (Debian: apt-get install npm)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name, version, files in PACKAGES:
            tarball = _pack(name, version, work)
            with tarfile.open(tarball) as tar:
                target = VENDOR / name
                shutil.rmtree(target, ignore_errors=True)
                for inside, outside in files.items():
                    member = tar.extractfile(f"package/{inside}")
                    assert member is not None, f"{name}@{version} has no {inside}"
                    (target / outside).parent.mkdir(parents=True, exist_ok=True)
                    (target / outside).write_bytes(member.read())
                (target / "VERSION").write_text(f"{name}@{version} (npm)\n")
                if name == "world-atlas":
                    member = tar.extractfile("package/land-110m.json")
                    assert member is not None
                    land = _topology_to_geojson(json.load(member), "land")
                    (target / "world-land.geojson").write_text(json.dumps(land, separators=(",", ":")))
                    (target / "SOURCE").write_text(
                        "world-land.geojson: Natural Earth's 1:110m land polygons (public domain,\n"
                        "https://www.naturalearthdata.com/about/terms-of-use/), from world-atlas@2.0.2's\n"
                        "land-110m.json (ISC, LICENSE), decoded from TopoJSON by scripts/vendor-dashboard.py.\n")
            print(f"vendor-dashboard: {name}@{version} -> {target.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
