"""Sidecar injection: namespaces without it, and mesh policy aimed at pods that have
no sidecar to apply it.

- IST0102 NamespaceNotInjected (Info, Istio's text): a namespace of the analysis with
  neither ``istio-injection`` nor ``istio.io/rev`` (Kubernetes' own namespaces and the
  mesh's root namespace excepted), as istioctl reports it.
- MSH0009 PolicyTargetsUninjectedWorkload (Warning): a Sidecar or PeerAuthentication
  that applies to workloads which run without a sidecar — their namespace is not
  enabled for injection (or disables it), the pod template opts out, or (in a running
  cluster) the pod was created before injection was enabled. Nothing enforces the
  policy there: a STRICT PeerAuthentication leaves such a pod open to plaintext.

Whether a pod gets a sidecar is decided by the injector's own rule
(``meshlet.daemon.injection.injection_required``). From files alone a namespace the
files do not declare is unknown, and its workloads are not judged.
"""

from __future__ import annotations

from meshlet.analyzers._system import is_system_namespace
from meshlet.analyzers._targets import sidecar_targets
from meshlet.analyzers.context import Context, WorkloadSource
from meshlet.analyzers.message import (
    NAMESPACE_NOT_INJECTED,
    POLICY_TARGETS_UNINJECTED_WORKLOAD,
    Message,
)
from meshlet.daemon.injection import INJECT_ANNOTATION, PROXY_CONTAINER, injection_required
from meshlet.resources.objects import Resource

__all__ = ["analyze_injection"]

INJECTION_LABEL = "istio-injection"
REVISION_LABEL = "istio.io/rev"


def _why_uninjected(context: Context, workload: WorkloadSource) -> str | None:
    """Why ``workload`` runs without a sidecar, or None if it has one (or is unknown)."""
    if workload.running_proxy is True:
        return None
    labels = context.namespace_labels(workload.namespace)
    if labels is None:
        return None
    if workload.running_proxy is None:
        if any(c.name == PROXY_CONTAINER for c in workload.spec.containers):
            return None
        if injection_required(workload.as_pod(), labels):
            return None
    says = (
        workload.labels.get(INJECT_ANNOTATION) or workload.annotations.get(INJECT_ANNOTATION) or ""
    ).lower()
    if labels.get(INJECTION_LABEL) == "disabled":
        return f"namespace {workload.namespace} is labelled {INJECTION_LABEL}=disabled"
    if says in ("false", "n", "no", "off", "0"):
        return f"its pod template says {INJECT_ANNOTATION}={says}"
    if labels.get(INJECTION_LABEL) == "enabled" or says in ("true", "y", "yes", "on", "1"):
        return "the pod was created before injection was enabled"
    return f"namespace {workload.namespace} is not enabled for injection"


def _fix(context: Context, workload: WorkloadSource, reason: str) -> str:
    namespace = workload.namespace
    if reason.startswith("the pod was created"):
        return f"delete the pod so that it is created again with a sidecar ({workload.ref})"
    if reason.startswith("its pod template"):
        return f"remove {INJECT_ANNOTATION} from the pod template of {workload.ref}"
    return (
        f"run 'meshlet label namespace {namespace} {INJECTION_LABEL}=enabled --overwrite' "
        "and create the pods again"
    )


def _policy_message(
    context: Context, resource: Resource, kind_word: str, workloads: list[WorkloadSource]
) -> list[Message]:
    problems: dict[str, list[WorkloadSource]] = {}
    for workload in workloads:
        reason = _why_uninjected(context, workload)
        if reason is not None:
            problems.setdefault(reason, []).append(workload)
    messages = []
    for reason, affected in sorted(problems.items()):
        names = ", ".join(sorted(str(w.ref) for w in affected))
        text = (
            f"This {kind_word} applies to {names}, whose pods run without a sidecar because "
            f"{reason}: nothing enforces it there. Fix: {_fix(context, affected[0], reason)}."
        )
        messages.append(
            POLICY_TARGETS_UNINJECTED_WORKLOAD.message(
                text, resource.ref, context.location(resource, ("metadata", "name"))
            )
        )
    return messages


def analyze_injection(context: Context) -> list[Message]:
    messages: list[Message] = []
    for name, namespace in context.namespaces.items():
        if is_system_namespace(name, context.mesh):
            continue
        labels = namespace.value.labels
        if INJECTION_LABEL in labels or REVISION_LABEL in labels:
            continue
        messages.append(
            NAMESPACE_NOT_INJECTED.message(
                "The namespace is not enabled for Istio injection. Run 'kubectl label "
                f"namespace {name} istio-injection=enabled' to enable it, or 'kubectl label "
                f"namespace {name} istio-injection=disabled' to explicitly mark it as not "
                "needing injection.",
                namespace.resource.ref,
                context.location(namespace.resource, ("metadata", "name")),
            )
        )
    for sidecar in context.sidecars:
        if is_system_namespace(sidecar.value.namespace, context.mesh):
            continue
        targets = [
            t.source for t in sidecar_targets(context, sidecar.value) if t.source is not None
        ]
        messages.extend(_policy_message(context, sidecar.resource, "Sidecar", targets))
    for policy in context.peer_authentications:
        value = policy.value
        if is_system_namespace(value.namespace, context.mesh):
            continue
        targets = context.selected(value.namespace, value.selector or {})
        messages.extend(_policy_message(context, policy.resource, "PeerAuthentication", targets))
    return messages
