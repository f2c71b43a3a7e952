"""Istio's and Kubernetes' validation rules, with their messages word for word.

``validate(resource)`` returns the findings of one decoded resource; errors make
``apply`` refuse the input, warnings are shown and the input is accepted.

Theory of operation: Istio validates a config with one Go function per kind that
joins its errors and warnings with ``multierror``; ``istioctl analyze`` then prints
each joined error as its own message. meshlet keeps them apart from the start: each
rule yields a ``Finding`` with its level and the path of the field it is about, so
the CLI can name the file and line. The order of findings is Istio's order of
checks (map entries in sorted key order, where Go's would be random).

Besides Istio's Go rules, the CEL rules of Istio's CRDs (what the API server checks
before Istio sees an object) are reported in the API server's words
(``spec: Invalid value: portLevelMtls requires selector``).

Pure: no I/O.
"""

from __future__ import annotations

from meshlet.resources.objects import Resource
from meshlet.resources.validation.findings import Finding, Level

__all__ = ["Finding", "Level", "validate"]


def validate(resource: Resource) -> list[Finding]:
    """Every finding for ``resource`` (none for kinds without rules)."""
    from meshlet.resources.validation.destination_rule import validate_destination_rule
    from meshlet.resources.validation.peer_authentication import validate_peer_authentication
    from meshlet.resources.validation.sidecar import validate_sidecar

    group = resource.info.group
    if group == "networking.istio.io" and resource.kind == "Sidecar":
        return validate_sidecar(resource)
    if group == "networking.istio.io" and resource.kind == "DestinationRule":
        return validate_destination_rule(resource)
    if group == "security.istio.io" and resource.kind == "PeerAuthentication":
        return validate_peer_authentication(resource)
    if group in {"", "apps"}:
        return _validate_kubernetes(resource)
    return []


def _validate_kubernetes(resource: Resource) -> list[Finding]:
    from meshlet.resources.validation.kubernetes import validate_kubernetes

    return list(validate_kubernetes(resource))
