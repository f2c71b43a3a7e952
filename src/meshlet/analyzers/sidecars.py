"""Sidecars that compete for the same workloads (Istio's sidecar selector analyzers).

- IST0110 ConflictingSidecarWorkloadSelectors (Error): several Sidecars with labels
  select the same workload; which one applies is the oldest, and users rarely mean it.
- IST0111 MultipleSidecarsWithoutWorkloadSelectors (Error): several Sidecars of one
  namespace have no ``workloadSelector``.

Texts are Istio's; names are listed sorted, as Go prints a ``[]string``.
"""

from __future__ import annotations

from meshlet.analyzers.context import Context, Sourced, selects
from meshlet.analyzers.message import (
    CONFLICTING_SIDECAR_WORKLOAD_SELECTORS,
    MULTIPLE_SIDECARS_WITHOUT_WORKLOAD_SELECTORS,
    Message,
)
from meshlet.resources.istio import Sidecar

__all__ = ["analyze_sidecar_conflicts"]


def _names(sidecars: list[Sourced[Sidecar]]) -> str:
    return "[" + " ".join(sorted(s.value.name for s in sidecars)) + "]"


def analyze_sidecar_conflicts(context: Context) -> list[Message]:
    messages: list[Message] = []
    for workload in context.workloads:
        selecting = [
            sidecar
            for sidecar in context.sidecars
            if sidecar.value.namespace == workload.namespace
            and sidecar.value.workload_selector
            and selects(sidecar.value.workload_selector, workload.labels)
        ]
        if len(selecting) < 2:
            continue
        for sidecar in selecting:
            messages.append(
                CONFLICTING_SIDECAR_WORKLOAD_SELECTORS.message(
                    f"The Sidecars {_names(selecting)} in namespace "
                    f'"{workload.namespace}" select the same workload pod "{workload.name}", '
                    "which can lead to undefined behavior.",
                    sidecar.resource.ref,
                    context.location(sidecar.resource, ("metadata", "name")),
                )
            )
    by_namespace: dict[str, list[Sourced[Sidecar]]] = {}
    for sidecar in context.sidecars:
        if sidecar.value.workload_selector is None:
            by_namespace.setdefault(sidecar.value.namespace, []).append(sidecar)
    for namespace, sidecars in sorted(by_namespace.items()):
        if len(sidecars) < 2:
            continue
        for sidecar in sidecars:
            messages.append(
                MULTIPLE_SIDECARS_WITHOUT_WORKLOAD_SELECTORS.message(
                    f'The Sidecars {_names(sidecars)} in namespace "{namespace}" have no '
                    "workload selector, which can lead to undefined behavior.",
                    sidecar.resource.ref,
                    context.location(sidecar.resource, ("metadata", "name")),
                )
            )
    return messages
