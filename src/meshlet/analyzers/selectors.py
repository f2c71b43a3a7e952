"""Selectors that pick nothing.

- IST0127 NoMatchingWorkloadsFound (Warning): a Sidecar's ``workloadSelector`` or a
  PeerAuthentication's ``selector`` that matches no workload of its namespace. (Istio's
  own Sidecar analyzer says IST0101 at Error level; meshlet reports the Sidecar as
  istioctl reports such policies, IST0127, because the pods are often not among the
  files analyzed and an Error would fail the run.)
- MSH0007 ServiceSelectsNoPods (Warning): a Service whose selector matches no Pod or
  Deployment of its namespace: it has no endpoints.
- MSH0008 ServiceWithoutSelector (Warning): a Service with no selector gets no
  endpoints at all (meshlet reads no hand-made Endpoints); ExternalName Services are
  meant to have none.

Selectors in the mesh's root namespace are left alone: pilot ignores workload
selectors there, and the control plane's own objects live there.
"""

from __future__ import annotations

from collections.abc import Mapping

from meshlet.analyzers._system import is_system_namespace
from meshlet.analyzers.context import Context, format_labels
from meshlet.analyzers.message import (
    NO_MATCHING_WORKLOADS_FOUND,
    SERVICE_SELECTS_NO_PODS,
    SERVICE_WITHOUT_SELECTOR,
    Message,
)
from meshlet.resources.yamlsource import Path

__all__ = ["analyze_selectors"]


def _first_label(prefix: Path, labels: Mapping[str, str]) -> Path:
    return (*prefix, sorted(labels)[0]) if labels else prefix


def _no_match(labels: Mapping[str, str]) -> str:
    return f"No matching workloads for this resource with the following labels: {format_labels(labels)}"


def analyze_selectors(context: Context) -> list[Message]:
    messages: list[Message] = []
    for sidecar in context.sidecars:
        labels = sidecar.value.workload_selector
        if not labels or is_system_namespace(sidecar.value.namespace, context.mesh):
            continue
        if not context.selected(sidecar.value.namespace, labels):
            path = _first_label(("spec", "workloadSelector", "labels"), labels)
            messages.append(
                NO_MATCHING_WORKLOADS_FOUND.message(
                    _no_match(labels),
                    sidecar.resource.ref,
                    context.location(sidecar.resource, path),
                )
            )
    for policy in context.peer_authentications:
        labels = policy.value.selector
        if not labels or is_system_namespace(policy.value.namespace, context.mesh):
            continue
        if not context.selected(policy.value.namespace, labels):
            path = _first_label(("spec", "selector", "matchLabels"), labels)
            messages.append(
                NO_MATCHING_WORKLOADS_FOUND.message(
                    _no_match(labels),
                    policy.resource.ref,
                    context.location(policy.resource, path),
                )
            )
    for service in context.services:
        value = service.value
        if is_system_namespace(value.namespace, context.mesh):
            continue
        if (value.namespace, value.name) == ("default", "kubernetes"):
            continue  # the API server's own Service
        if value.selector is None:
            if value.type == "ExternalName":
                continue
            messages.append(
                SERVICE_WITHOUT_SELECTOR.message(
                    "The Service has no selector, so it gets no endpoints and calls to it fail "
                    "(meshlet reads no hand-made Endpoints). Fix: add spec.selector with the "
                    "labels of the pods it fronts.",
                    service.resource.ref,
                    context.location(service.resource, ("spec",)),
                )
            )
        elif not context.selected(value.namespace, value.selector):
            messages.append(
                SERVICE_SELECTS_NO_PODS.message(
                    f"The Service selects pods labelled {format_labels(value.selector)}, but no "
                    f"Pod or Deployment in namespace {value.namespace} has those labels: the "
                    "Service has no endpoints, so calls to it fail. Fix: make spec.selector "
                    "match the labels of the pod template.",
                    service.resource.ref,
                    context.location(service.resource, ("spec", "selector")),
                )
            )
    return messages
