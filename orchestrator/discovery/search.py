"""The discovery engine (pure): an index of sensors, searched by what they measure.

A sensor means concepts (quantity kinds) when its attribute name, entity type or unit is a
word of the ontology (``vocabulary.py``): ``TC1`` is an alias of air temperature, ``degC``
a unit of temperatures. A query's text is matched, typo-tolerant (rapidfuzz's ratio, 80 at
least), against the ontology's words and against the sensors' own names: ``tempreature``
reaches ``temperature`` (score 93), and through it every sensor meaning that concept,
whatever it is called. Each hit says why it matched. Filters: tenants, last seen, near a
point, within a polygon.

The index is built once per set of sensors (the registry rebuilds it when they change);
names are grouped first, so the ontology is consulted once per distinct (attribute, type,
unit), not once per sensor.
"""

from __future__ import annotations

import heapq
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence

from rapidfuzz import fuzz, process

from orchestrator import ontology

from .model import Hit, Query, Sensor
from .vocabulary import concepts_of, terms, words

CUTOFF = 80.0  # rapidfuzz ratio below which a word is not taken for another
EARTH_M = 6_371_000.0


class Index:
    def __init__(self, sensors: Iterable[Sensor]) -> None:
        self.sensors: list[Sensor] = list(sensors)
        self.by_concept: dict[str, list[int]] = defaultdict(list)
        self.by_name: dict[str, list[int]] = defaultdict(list)
        self.why: dict[int, tuple[str, ...]] = {}
        meanings: dict[tuple[str, str, str | None], tuple[frozenset[str], tuple[str, ...]]] = {}
        for i, s in enumerate(self.sensors):
            key = (s.attr, s.entity_type, s.unit)
            if key not in meanings:
                meanings[key] = concepts_of(s.attr, s.entity_type, s.unit)
            found, reasons = meanings[key]
            for concept in found:
                self.by_concept[concept].append(i)
            self.why[i] = reasons
            for name in {ontology.normalize(s.attr), ontology.normalize(s.entity_type)}:
                self.by_name[name].append(i)
        self.names = list(self.by_name)
        self.terms = terms()
        self.term_keys = list(self.terms)

    # -- matching ------------------------------------------------------------------------------

    def _matches(self, text: str) -> tuple[dict[int, float], dict[int, list[tuple[float, str]]]]:
        """Sensor -> best score, and the reasons, for one piece of query text."""
        scores: dict[int, float] = {}
        reasons: dict[int, list[tuple[float, str]]] = defaultdict(list)
        key = ontology.normalize(text)

        def take(ids: Sequence[int], score: float, reason: str) -> None:
            for i in ids:
                if score > scores.get(i, -1.0):
                    scores[i] = score
                reasons[i].append((score, reason))

        for found, score, _ in process.extract(key, self.term_keys, scorer=fuzz.ratio, score_cutoff=CUTOFF, limit=5):
            term = self.terms[found]
            said = f"`{text}` is `{found}`" if score == 100 else f"`{text}` ~ `{found}` ({score:.0f})"
            for concept in sorted(term.concepts):
                take(self.by_concept.get(concept, ()), score * (0.9 if term.by_unit else 1.0),
                     f"{said}: {term.why}")
        for found, score, _ in process.extract(key, self.names, scorer=fuzz.ratio, score_cutoff=CUTOFF, limit=20):
            take(self.by_name[found], score, f"`{text}` {'is' if score == 100 else '~'} the name `{found}`"
                 + ("" if score == 100 else f" ({score:.0f})"))
        return scores, reasons

    def search(self, query: Query) -> list[Hit]:
        """The sensors matching ``query``, best first (then the most recently seen)."""
        pieces = [query.text] if query.text.strip() else []
        scores, reasons = self._matches(query.text) if pieces else ({}, {})
        if not scores and len(words(query.text)) > 1:  # no match as a whole: word by word
            for word in words(query.text):
                if len(word) < 2:
                    continue
                found, why = self._matches(word)
                for i, score in found.items():
                    scores[i] = max(score, scores.get(i, 0.0))
                    reasons.setdefault(i, []).extend(why[i])
        kept = (i for i in scores if self._passes(self.sensors[i], query))
        best = heapq.nlargest(query.limit, kept, key=lambda i: (scores[i], self.sensors[i].seen or 0.0))
        return [Hit(self.sensors[i], round(scores[i], 1), _reasons(reasons[i], self.why[i])) for i in best]

    # -- filters ----------------------------------------------------------------------------------

    @staticmethod
    def _passes(s: Sensor, q: Query) -> bool:
        if q.tenants is not None and s.tenant not in q.tenants:
            return False
        if q.seen_within is not None and (s.seen is None or q.now - s.seen > q.seen_within):
            return False
        if q.near is not None or q.within is not None:
            if s.lat is None or s.lon is None:
                return False
            if q.near is not None and distance_m(q.near[0], q.near[1], s.lat, s.lon) > q.near[2]:
                return False
            if q.within is not None and not inside(s.lat, s.lon, q.within):
                return False
        return True


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
