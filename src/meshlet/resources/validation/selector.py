"""Workload selectors: Istio's checks and the CRDs' CEL rules on labels.

Two shapes exist: ``networking.v1alpha3.WorkloadSelector`` (Sidecar:
``workloadSelector.labels``) and ``type.v1beta1.WorkloadSelector``
(PeerAuthentication ``selector``, DestinationRule ``workloadSelector``:
``matchLabels``). Istio checks both the same way; their CEL rules differ.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from meshlet.resources.validation._go import go_quote
from meshlet.resources.validation.findings import Finding, cel_error, error, warning
from meshlet.resources.yamlsource import Path

__all__ = [
    "NO_LABELS_WARNING",
    "match_labels_cel",
    "selector_errors",
    "sidecar_labels_cel",
    "validate_match_labels",
]

NO_LABELS_WARNING = "workload selector specified without labels"


def selector_errors(labels: Mapping[str, Any], path: Path) -> list[Finding]:
    """``ValidateAlphaWorkloadSelector`` / ``validateWorkloadSelector``: the errors."""
    findings: list[Finding] = []
    for key in sorted(labels):
        value = "" if labels[key] is None else str(labels[key])
        pair = go_quote(f"{key}={value}")
        where = (*path, key)
        if key == "":
            findings.append(error(f"empty key is not supported in selector: {pair}", where))
        if "*" in key or "*" in value:
            findings.append(error(f"wildcard is not supported in selector: {pair}", where))
    return findings


def validate_match_labels(selector: Mapping[str, Any] | None, path: Path) -> list[Finding]:
    """``validateWorkloadSelector`` on a ``{matchLabels: …}`` selector at ``path``."""
    if selector is None:
        return []
    labels = selector.get("matchLabels") or {}
    findings = selector_errors(labels, (*path, "matchLabels"))
    if not labels:
        findings.append(warning(NO_LABELS_WARNING, path))
    return findings


def match_labels_cel(selector: Mapping[str, Any] | None, path: Path) -> list[Finding]:
    """The CEL rules on ``matchLabels`` (PeerAuthentication, DestinationRule)."""
    if selector is None or not isinstance(selector.get("matchLabels"), Mapping):
        return []
    labels: Mapping[str, Any] = selector["matchLabels"]
    where = (*path, "matchLabels")
    findings: list[Finding] = []
    if any("*" in key for key in labels):
        findings.append(cel_error("wildcard not allowed in label key match", where))
    if any(key == "" for key in labels):
        findings.append(cel_error("key must not be empty", where))
    for key in sorted(labels):
        if "*" in str(labels[key] or ""):
            findings.append(cel_error("wildcard not allowed in label value match", (*where, key)))
    return findings


def sidecar_labels_cel(selector: Mapping[str, Any] | None, path: Path) -> list[Finding]:
    """The CEL rule on Sidecar ``workloadSelector.labels`` values."""
    if selector is None or not isinstance(selector.get("labels"), Mapping):
        return []
    labels: Mapping[str, Any] = selector["labels"]
    return [
        cel_error("wildcard is not supported in selector", (*path, "labels", key))
        for key in sorted(labels)
        if "*" in str(labels[key] or "")
    ]
