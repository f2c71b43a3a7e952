"""Istio's ``ValidateDestinationRule``: the host, the TLS settings of every traffic
policy, subsets, ``exportTo`` and the workload selector, with the CRD's CEL rules
on the selector.

Not covered (meshlet does not act on them): load-balancer, outlier-detection,
tunnel and proxy-protocol details beyond their presence, and subset label syntax.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from meshlet.resources.istio import DestinationRule, client_tls_settings
from meshlet.resources.objects import Resource
from meshlet.resources.validation._go import is_dns1123_label, validate_wildcard_domain
from meshlet.resources.validation.connection_pool import validate_connection_pool
from meshlet.resources.validation.findings import Finding, error
from meshlet.resources.validation.selector import match_labels_cel, validate_match_labels
from meshlet.resources.validation.tls import validate_client_tls
from meshlet.resources.yamlsource import Path

__all__ = ["validate_destination_rule"]

_SPEC: Path = ("spec",)


def validate_destination_rule(resource: Resource) -> list[Finding]:
    spec = resource.spec
    rule = DestinationRule.from_resource(resource)
    namespace = rule.namespace
    selector = _mapping(spec.get("workloadSelector"))
    findings = match_labels_cel(selector, (*_SPEC, "workloadSelector"))

    host_error = validate_wildcard_domain(rule.host)
    if host_error is not None:
        findings.append(error(host_error, (*_SPEC, "host")))
    findings.extend(
        _traffic_policy(_mapping(spec.get("trafficPolicy")), namespace, (*_SPEC, "trafficPolicy"))
    )
    names: set[str] = set()
    for index, subset in enumerate(_list(spec.get("subsets"))):
        path = (*_SPEC, "subsets", index)
        if subset is None:
            findings.append(error("subset may not be null", path))
            continue
        name = str(subset.get("name") or "")
        if name in names:
            findings.append(error(f"duplicate subset names: {name}", (*path, "name")))
        names.add(name)
        if not name:
            findings.append(error("subset name cannot be empty", (*path, "name")))
        elif not is_dns1123_label(name):
            findings.append(error(f"subset name is invalid: {name}", (*path, "name")))
        findings.extend(
            _traffic_policy(
                _mapping(subset.get("trafficPolicy")), namespace, (*path, "trafficPolicy")
            )
        )
    findings.extend(_export_to(rule.export_to, namespace, selector is not None))
    findings.extend(validate_match_labels(selector, (*_SPEC, "workloadSelector")))
    return findings


_POLICY_FIELDS = (
    "outlierDetection",
    "connectionPool",
    "loadBalancer",
    "tls",
    "portLevelSettings",
    "tunnel",
    "proxyProtocol",
)


def _traffic_policy(policy: Mapping[str, Any] | None, namespace: str, path: Path) -> list[Finding]:
    if policy is None:
        return []
    if all(policy.get(field) is None for field in _POLICY_FIELDS):
        return [error("traffic policy must have at least one field", path)]
    if policy.get("tunnel") is not None and policy.get("proxyProtocol") is not None:
        return [error("tunnel and proxyProtocol must not be set together", path)]
    findings = validate_connection_pool(
        _mapping(policy.get("connectionPool")), (*path, "connectionPool")
    )
    findings.extend(_tls(policy.get("tls"), namespace, (*path, "tls")))
    for index, port_policy in enumerate(_list(policy.get("portLevelSettings"))):
        where = (*path, "portLevelSettings", index)
        if port_policy is None:
            findings.append(error("traffic policy may not be null", where))
            continue
        if port_policy.get("port") is None:
            findings.append(error("portTrafficPolicy must have valid port", where))
        if all(
            port_policy.get(field) is None
            for field in ("outlierDetection", "connectionPool", "loadBalancer", "tls")
        ):
            findings.append(error("port traffic policy must have at least one field", where))
        else:
            findings.extend(
                validate_connection_pool(
                    _mapping(port_policy.get("connectionPool")), (*where, "connectionPool")
                )
            )
            findings.extend(_tls(port_policy.get("tls"), namespace, (*where, "tls")))
    return findings


def _tls(raw: Any, namespace: str, path: Path) -> list[Finding]:
    if not isinstance(raw, Mapping):
        return []
    return validate_client_tls(client_tls_settings(raw), raw, namespace, path)


def _export_to(export_to: Sequence[str], namespace: str, has_selector: bool) -> list[Finding]:
    """``validateExportTo`` for a DestinationRule."""
    if not export_to:
        return []
    path = (*_SPEC, "exportTo")
    findings: list[Finding] = []
    accepted: set[str] = set()
    for index, entry in enumerate(export_to):
        key = namespace if entry == "." else entry
        if key in accepted:
            if key != entry:
                message = f"duplicate entries in exportTo: . and current namespace {namespace}"
            else:
                message = f"duplicate entries in exportTo for entry {entry}"
            findings.append(error(message, (*path, index)))
            continue
        problem = _visibility_error(key)
        if problem is not None:
            findings.append(error(problem, (*path, index)))
        else:
            accepted.add(key)
    if has_selector and accepted:
        if namespace in accepted:
            if len(accepted) > 1:
                findings.append(
                    error(
                        "destination rule with workload selector cannot have multiple entries "
                        "in exportTo",
                        path,
                    )
                )
        else:
            findings.append(
                error(
                    "destination rule with workload selector cannot have exportTo beyond "
                    "current namespace",
                    path,
                )
            )
    if "*" in accepted and len(export_to) > 1:
        findings.append(
            error("cannot have both public (*) and non-public exportTo values for a resource", path)
        )
    if "~" in accepted and len(export_to) > 1:
        findings.append(error("cannot export service entry to no one (~) and someone", path))
    return findings


def _visibility_error(value: str) -> str | None:
    """``visibility.Instance.Validate``: ``.``, ``*`` or a namespace name."""
    if value in {".", "*"}:
        return None
    if value == "~":
        return "exportTo ~ (none) is not allowed for Istio configuration objects"
    if is_dns1123_label(value):
        return None
    return "only .,*,~, or a valid DNS 1123 label is allowed as exportTo entry"


def _mapping(value: Any) -> Mapping[str, Any] | None:
    return value if isinstance(value, Mapping) else None


def _list(value: Any) -> Sequence[Any]:
    return value if isinstance(value, list) else ()
