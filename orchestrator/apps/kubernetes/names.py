"""Names Kubernetes accepts, made from the names users give (pure).

Kubernetes is stricter than the manifest in places (a namespace is a DNS label of at most 63
characters, a container port name an IANA service name of at most 15, a label value at most
63), and every object of an app is found again by its labels: both live here so that the
renderer and the back end agree on them.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

MANAGED_BY: Final = "waziup"
NAME_LABEL: Final = "app.kubernetes.io/name"
MANAGED_LABEL: Final = "app.kubernetes.io/managed-by"
PART_LABEL: Final = "app.kubernetes.io/part-of"
TENANT_LABEL: Final = "waziup.io/tenant"
APPS_PART: Final = "waziup-apps"
NAMESPACE_PREFIX: Final = "waziup-"
DEFAULT_TENANT: Final = "default"  # the namespace of apps without a tenant: waziup-default

_NOT_LABEL: Final = re.compile(r"[^a-z0-9-]+")
_NOT_ENV: Final = re.compile(r"[^A-Za-z0-9_]")


def dns_label(text: str, limit: int = 63) -> str:
    """``text`` as an RFC 1123 label of at most ``limit`` characters; a shortened or changed
    name keeps a hash of the original, so that two different names stay different."""
    plain = text.lower().replace("_", "-")
    label = _NOT_LABEL.sub("-", plain).strip("-") or "x"
    if label == plain and len(label) <= limit:
        return label  # only case or underscores changed: readable (tenants are case-blind anyway)
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"{label[: limit - 9].rstrip('-') or 'x'}-{digest}"


def tenant_namespace(tenant: str | None) -> str:
    """The namespace of a tenant's apps: ``waziup-<tenant>``, ``waziup-default`` without one."""
    return dns_label(NAMESPACE_PREFIX + (tenant or DEFAULT_TENANT))


def port_name(name: str) -> str:
    """A container port name (IANA_SVC_NAME: 15 characters, no double or edge hyphen)."""
    cleaned = re.sub(r"-+", "-", _NOT_LABEL.sub("-", name.lower())).strip("-")[:15].strip("-")
    if not re.search(r"[a-z]", cleaned):
        cleaned = ("p" + cleaned)[:15]
    return cleaned


def env_key(key: str) -> str:
    """An environment variable name (C identifier) for a ConfigMap or Secret key."""
    cleaned = _NOT_ENV.sub("_", key) or "_"
    return "_" + cleaned if cleaned[0].isdigit() else cleaned


def app_selector(name: str) -> dict[str, str]:
    """The labels that select an app's pods (and nothing else's)."""
    return {NAME_LABEL: dns_label(name), MANAGED_LABEL: MANAGED_BY}


def app_labels(name: str, tenant: str | None) -> dict[str, str]:
    """Every label an app's objects carry."""
    return {**app_selector(name), PART_LABEL: APPS_PART, TENANT_LABEL: dns_label(tenant or DEFAULT_TENANT)}


def label_selector(labels: dict[str, str]) -> str:
    """The ``labelSelector`` query text of equality labels."""
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))
