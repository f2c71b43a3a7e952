"""Istio's ``ValidatePeerAuthentication`` and the PeerAuthentication CRD's CEL rules.

The rules read the body as written rather than the typed model: a ``portLevelMtls``
key that is not a port number is a finding here, not an exception.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from meshlet.resources.istio import parse_port_key
from meshlet.resources.objects import Resource
from meshlet.resources.validation.findings import Finding, cel_error, error
from meshlet.resources.validation.selector import match_labels_cel, validate_match_labels
from meshlet.resources.yamlsource import Path

__all__ = ["validate_peer_authentication"]

_SPEC: Path = ("spec",)


def validate_peer_authentication(resource: Resource) -> list[Finding]:
    spec = resource.spec
    selector = spec.get("selector") if isinstance(spec.get("selector"), Mapping) else None
    ports_raw = spec.get("portLevelMtls")
    ports: Mapping[Any, Any] | None = ports_raw if isinstance(ports_raw, Mapping) else None
    labels = (selector or {}).get("matchLabels") or {}
    ports_path = (*_SPEC, "portLevelMtls")

    findings = _cel(spec, selector, ports)

    if not labels and ports:
        findings.append(
            error("mesh/namespace peer authentication cannot have port level mTLS", ports_path)
        )
    if ports is not None and not ports:
        findings.append(
            error("port level mTLS, if defined, must have at least one element", ports_path)
        )
    for key in _sorted_keys(ports or {}):
        number = parse_port_key(key)
        if number is None or number <= 0 or number > 65535:
            findings.append(error("port must be in range 1..65535", (*ports_path, key)))
    findings.extend(validate_match_labels(selector, (*_SPEC, "selector")))
    return findings


def _cel(
    spec: Mapping[str, Any], selector: Mapping[str, Any] | None, ports: Mapping[Any, Any] | None
) -> list[Finding]:
    findings: list[Finding] = []
    if spec.get("portLevelMtls") is not None:
        labels = (selector or {}).get("matchLabels") or {}
        if not labels:
            findings.append(cel_error("portLevelMtls requires selector", _SPEC))
    if ports is not None:
        numbers = [parse_port_key(key) for key in ports]
        if not all(n is not None and 0 < n <= 65535 for n in numbers):
            findings.append(cel_error("port must be between 1-65535", (*_SPEC, "portLevelMtls")))
    findings.extend(match_labels_cel(selector, (*_SPEC, "selector")))
    return findings


def _sorted_keys(ports: Mapping[Any, Any]) -> list[Any]:
    """Keys in port order (Go iterates the map at random; sorted is stable)."""
    return sorted(ports, key=lambda k: (parse_port_key(k) is None, parse_port_key(k) or 0, str(k)))
