"""The rules engine's pure core: Perseo-style rules on NGSI-v2 entities (docs/rules.md).

Modules, one job each: ``schema`` (JSON Schemas), ``model`` (documents to dataclasses,
``parse_rule``), ``conditions`` (which entities a rule looks at), ``windows`` (time
windows, aggregates), ``nosignal``, ``anomaly`` (outlier detectors), ``derived``
(aggregate entities), ``throttle`` (action and rule intervals), ``templates`` (``${...}``),
``actions`` (rendered actions), ``engine`` (``Engine``, ``Firing``). Nothing here does
I/O: the HTTP service that feeds notifications in and executes actions is
``analytics.rules.service`` (imported by nobody here).
"""

from .engine import Engine, Firing
from .model import Detector, Rule, RuleError, parse_detector, parse_rule

__all__ = ["Detector", "Engine", "Firing", "Rule", "RuleError", "parse_detector", "parse_rule"]
