"""Which workloads a Sidecar scopes, as pilot picks them (``Snapshot.sidecar_scope``).

A Sidecar that scopes no workload of the analysis still says something about the
pods it will select: they carry at least its selector's labels. Such a Sidecar gets
one hypothetical target with exactly those labels, so its findings do not depend on
whether the workloads were among the inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

from meshlet.analyzers.context import Context, WorkloadSource
from meshlet.pilot.snapshot import Proxy, Workload
from meshlet.resources.istio import Sidecar

__all__ = ["Target", "sidecar_targets"]


@dataclass(frozen=True, slots=True)
class Target:
    """A workload a Sidecar applies to; ``source`` is None for the hypothetical one."""

    source: WorkloadSource | None
    workload: Workload
    proxy: Proxy

    @property
    def label(self) -> str:
        if self.source is not None:
            return str(self.source.ref)
        return "the workloads it selects"


def _same(left: Sidecar | None, right: Sidecar) -> bool:
    return left is not None and (left.namespace, left.name) == (right.namespace, right.name)


def sidecar_targets(context: Context, sidecar: Sidecar) -> list[Target]:
    """The workloads ``sidecar`` scopes, or one hypothetical workload (see above)."""
    targets: list[Target] = []
    for source in context.workloads_in(sidecar.namespace):
        workload = context.mesh_workload(source)
        proxy = context.proxy_for(workload)
        if _same(proxy.sidecar, sidecar):
            targets.append(Target(source, workload, proxy))
    if targets:
        return targets
    hypothetical = context.hypothetical_workload(sidecar.namespace, sidecar.workload_selector or {})
    proxy = context.proxy_for(hypothetical)
    if not _same(proxy.sidecar, sidecar):
        return []  # another Sidecar would scope such pods
    return [Target(None, hypothetical, proxy)]
