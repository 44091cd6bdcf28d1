"""The discovery engine (pure): an index of sensors, searched by what they measure.

A sensor means concepts (quantity kinds) when its attribute name, entity type or unit is a
word of the ontology (``vocabulary.py``): ``TC1`` is an alias of air temperature, ``degC``
a unit of temperatures. A query's text is matched, typo-tolerant (rapidfuzz's ratio, 80 at
least), against the ontology's words and against the sensors' own names: ``tempreature``
reaches ``temperature`` (score 91), and through it every sensor meaning that concept,
whatever it is called. Each hit says why it matched. Filters: tenants, last seen, near a
point, within a polygon, private sensors of others (a viewer's query).

The index is built once per set of sensors (the registry rebuilds it when they change);
names are grouped first, so the ontology is consulted once per distinct (attribute, type,
unit, kind), not once per sensor. A query's candidates can be tens of thousands (every
temperature of the platform): they are scored and filtered as numpy arrays, and only the
hits get their reasons written, which keeps a query at a few milliseconds on 100,000
sensors (``bench/discovery.py``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence

import numpy as np
from rapidfuzz import fuzz, process

from orchestrator import ontology

from .model import Hit, Query, Sensor
from .vocabulary import concepts_of, terms, words

CUTOFF = 80.0  # rapidfuzz ratio below which a word is not taken for another
EARTH_M = 6_371_000.0

Match = tuple[str, str, float, str]  # ("concept" or "name", which one, score, reason)


class Index:
    """The sensors, and what finds them fast: the ids of the sensors meaning each concept
    and bearing each name, and their tenants, places and times as arrays, so that a query
    scores and filters tens of thousands of candidates with a few vector operations
    (numpy) rather than one Python call each; reasons are written for the hits only."""

    def __init__(self, sensors: Iterable[Sensor]) -> None:
        self.sensors: list[Sensor] = list(sensors)
        by_concept: dict[str, list[int]] = defaultdict(list)
        by_name: dict[str, list[int]] = defaultdict(list)
        meanings: dict[tuple[str, str, str | None, str | None], int] = {}
        self.meanings: list[tuple[frozenset[str], tuple[str, ...]]] = []
        meaning_of = np.empty(len(self.sensors), dtype=np.int32)
        tenants: dict[str, int] = {}
        tenant_of = np.empty(len(self.sensors), dtype=np.int32)
        for i, s in enumerate(self.sensors):
            key = (s.attr, s.entity_type, s.unit, s.kind)
            m = meanings.get(key)
            if m is None:
                m = meanings[key] = len(self.meanings)
                self.meanings.append(concepts_of(*key))
            meaning_of[i] = m
            tenant_of[i] = tenants.setdefault(s.tenant, len(tenants))
            for name in {ontology.normalize(s.attr), ontology.normalize(s.entity_type)}:
                by_name[name].append(i)
        # by concept, through the meanings: one append per distinct meaning and sensor
        members: dict[int, list[int]] = defaultdict(list)
        for i, m in enumerate(meaning_of.tolist()):
            members[m].append(i)
        for m, ids in members.items():
            for concept in self.meanings[m][0]:
                by_concept[concept].extend(ids)
        self.by_concept = {c: np.sort(np.array(ids, dtype=np.int64)) for c, ids in by_concept.items()}
        self.by_name = {n: np.array(ids, dtype=np.int64) for n, ids in by_name.items()}
        self.meaning_of = meaning_of
        self.tenants = tenants
        self.tenant_of = tenant_of
        nan = float("nan")
        self.lat = np.array([nan if s.lat is None else s.lat for s in self.sensors], dtype=np.float64)
        self.lon = np.array([nan if s.lon is None else s.lon for s in self.sensors], dtype=np.float64)
        self.seen = np.array([nan if s.seen is None else s.seen for s in self.sensors], dtype=np.float64)
        self.private = np.array([s.private for s in self.sensors], dtype=bool)
        self.owners: dict[str, int] = {}
        self.owner_of = np.array([-1 if s.owner is None else self.owners.setdefault(s.owner, len(self.owners))
                                  for s in self.sensors], dtype=np.int32)
        self.names = list(self.by_name)
        self.terms = terms()
        self.term_keys = list(self.terms)

    # -- matching ------------------------------------------------------------------------------

    def _matches(self, text: str) -> list[Match]:
        """What one piece of query text reaches: ontology concepts and sensors' own names."""
        key = ontology.normalize(text)
        found: list[Match] = []
        for word, score, _ in process.extract(key, self.term_keys, scorer=fuzz.ratio, score_cutoff=CUTOFF, limit=5):
            term = self.terms[word]
            said = f"`{text}` is `{word}`" if score == 100 else f"`{text}` ~ `{word}` ({score:.0f})"
            for concept in sorted(term.concepts):
                found.append(("concept", concept, score * (0.9 if term.by_unit else 1.0), f"{said}: {term.why}"))
        for name, score, _ in process.extract(key, self.names, scorer=fuzz.ratio, score_cutoff=CUTOFF, limit=20):
            found.append(("name", name, score, f"`{text}` {'is' if score == 100 else '~'} the name `{name}`"
                          + ("" if score == 100 else f" ({score:.0f})")))
        return found

    def _ids(self, match: Match) -> np.ndarray:
        kind, which = match[0], match[1]
        empty = np.empty(0, dtype=np.int64)
        return self.by_concept.get(which, empty) if kind == "concept" else self.by_name.get(which, empty)

    def search(self, query: Query) -> list[Hit]:
        """The sensors matching ``query``, best first (then the most recently seen)."""
        matches = self._matches(query.text) if query.text.strip() else []
        if not any(len(self._ids(m)) for m in matches) and len(words(query.text)) > 1:
            matches = [m for word in words(query.text) if len(word) >= 2 for m in self._matches(word)]
        matches = [m for m in matches if len(self._ids(m))]
        if not matches:
            return []
        best = np.full(len(self.sensors), -1.0)
        for match in matches:
            ids = self._ids(match)
            best[ids] = np.maximum(best[ids], match[2])
        candidates = np.flatnonzero(best >= 0)
        candidates = candidates[self._passing(candidates, query)]
        if not len(candidates):
            return []
        scores, seen = best[candidates], np.nan_to_num(self.seen[candidates], nan=0.0)
        order = np.lexsort((-seen, -scores))[: query.limit]
        return [self._hit(int(i), float(best[i]), matches) for i in candidates[order]]

    def _hit(self, i: int, score: float, matches: list[Match]) -> Hit:
        s = self.sensors[i]
        concepts, own = self.meanings[int(self.meaning_of[i])]
        names = {ontology.normalize(s.attr), ontology.normalize(s.entity_type)}
        matched = [(m[2], m[3]) for m in matches if (m[1] in concepts if m[0] == "concept" else m[1] in names)]
        return Hit(s, round(score, 1), _reasons(matched, own))

    # -- filters ----------------------------------------------------------------------------------

    def _passing(self, ids: np.ndarray, q: Query) -> np.ndarray:
        """Which of ``ids`` the query's filters keep (a boolean mask)."""
        keep = np.ones(len(ids), dtype=bool)
        if q.tenants is not None:
            codes = [self.tenants[t] for t in q.tenants if t in self.tenants]
            keep &= np.isin(self.tenant_of[ids], codes)
        if q.viewer is not None:  # WAZIUP's rule: a private device is its owner's (and an admin's)
            mine = self.owners.get(q.viewer, -2) if q.viewer else -2
            keep &= ~self.private[ids] | (self.owner_of[ids] == mine)
        if q.seen_within is not None:
            with np.errstate(invalid="ignore"):
                keep &= q.now - self.seen[ids] <= q.seen_within  # never seen (NaN): not kept
        if q.near is not None:
            lat, lon, metres = q.near
            keep &= distances_m(lat, lon, self.lat[ids], self.lon[ids]) <= metres
        if q.within is not None:
            keep &= inside_all(self.lat[ids], self.lon[ids], q.within)
        return keep


def _reasons(matched: list[tuple[float, str]], own: tuple[str, ...], most: int = 3) -> tuple[str, ...]:
    """The best reasons the query matched for (strongest first), then what the sensor's own
    names mean."""
    ranked = [reason for _, reason in sorted(matched, key=lambda pair: -pair[0])]
    return tuple(dict.fromkeys([*ranked[:most], *own]))


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine), metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_M * math.asin(min(1.0, math.sqrt(h)))


def distances_m(lat: float, lon: float, lats: np.ndarray, lons: np.ndarray) -> np.ndarray:
    """``distance_m`` from one point to many (NaN, no place: NaN, which compares false)."""
    p1, p2 = math.radians(lat), np.radians(lats)
    h = np.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * np.cos(p2) * np.sin(np.radians(lons - lon) / 2) ** 2
    with np.errstate(invalid="ignore"):
        return 2 * EARTH_M * np.arcsin(np.sqrt(np.minimum(1.0, h)))


def inside_all(lats: np.ndarray, lons: np.ndarray, polygon: Sequence[tuple[float, float]]) -> np.ndarray:
    """``inside`` for many points (no place, NaN: outside)."""
    hit = np.zeros(len(lats), dtype=bool)
    j = len(polygon) - 1
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):  # huge coordinates: the test is False
        for i, (yi, xi) in enumerate(polygon):
            yj, xj = polygon[j]
            if yi != yj:
                crosses = (yi > lats) != (yj > lats)
                hit ^= crosses & (lons < (xj - xi) * (lats - yi) / (yj - yi) + xi)
            j = i
    return hit & ~np.isnan(lats)


def inside(lat: float, lon: float, polygon: Sequence[tuple[float, float]]) -> bool:
    """Whether the point is inside the polygon of (lat, lon) corners (even-odd rule)."""
    hit = False
    j = len(polygon) - 1
    for i, (yi, xi) in enumerate(polygon):
        yj, xj = polygon[j]
        if (yi > lat) != (yj > lat) and lon < (xj - xi) * (lat - yi) / (yj - yi) + xi:
            hit = not hit
        j = i
    return hit
