"""Peer-authentication composition: which mTLS mode a workload's inbound ports have.

Theory of operation. ``compose_peer_authentication`` is Istio's
``ComposePeerAuthentication`` as a pure function of the policies, the workload's
namespace and labels, and the mesh root namespace. Precedence, in order:

1. Classify every policy.

   - no selector (absent or without labels) in the root namespace: **mesh** level;
   - no selector in the workload's namespace: **namespace** level;
   - a selector in the workload's namespace (not the root namespace) whose labels are
     all among the workload's labels: **workload** level;
   - a selector in the root namespace: ignored (Istio does so); every other policy
     does not apply to this workload.

2. At each level only one policy counts: the oldest by ``creationTimestamp`` (a policy
   without one counts as oldest, as Go's zero time does), ties broken by name.
3. Start from PERMISSIVE and apply mesh, then namespace, then workload. A level whose
   policy has no ``mtls`` block, or mode UNSET, inherits the mode above it.
4. Only the workload policy's ``portLevelMtls`` counts (mesh and namespace policies
   cannot have one). Each port gets its own mode; UNSET there means the workload's
   composed mode. Port keys are container (target) ports, never Service ports.

``ComposedMTLS.for_port`` is ``GetMutualTLSModeForPort``: the port's own mode if it
has one, else the workload's mode. The result never holds UNSET.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from meshlet.resources.istio import MTLSMode, PeerAuthentication

__all__ = ["ComposedMTLS", "compose_peer_authentication", "creation_time"]

_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class ComposedMTLS:
    """The effective mTLS mode of a workload, with its per-port overrides."""

    mode: MTLSMode = MTLSMode.PERMISSIVE
    per_port: Mapping[int, MTLSMode] = field(default_factory=dict)

    def for_port(self, port: int) -> MTLSMode:
        """The mode on a container port: its port-level mode, else the workload's."""
        return self.per_port.get(port, self.mode)


def compose_peer_authentication(
    policies: Iterable[PeerAuthentication],
    *,
    namespace: str,
    workload_labels: Mapping[str, str],
    root_namespace: str,
) -> ComposedMTLS:
    """The composed mTLS settings for a workload (precedence in the module docstring)."""
    mesh: list[PeerAuthentication] = []
    namespace_level: list[PeerAuthentication] = []
    workload: list[PeerAuthentication] = []
    for policy in policies:
        has_selector = bool(policy.selector)
        if policy.namespace == root_namespace and not has_selector:
            mesh.append(policy)
        elif policy.namespace == root_namespace:
            continue  # selector policies in the root namespace are ignored
        elif policy.namespace != namespace:
            continue
        elif not has_selector:
            namespace_level.append(policy)
        elif _selects(policy.selector or {}, workload_labels):
            workload.append(policy)

    mode = MTLSMode.PERMISSIVE
    for level in (mesh, namespace_level, workload):
        chosen = _oldest(level)
        if chosen is not None:
            mode = _inherit(chosen.mtls_mode, mode)

    per_port: dict[int, MTLSMode] = {}
    chosen_workload = _oldest(workload)
    if chosen_workload is not None:
        for port, port_mode in sorted(chosen_workload.port_level_mtls.items()):
            per_port[port] = _inherit(port_mode, mode)
    return ComposedMTLS(mode=mode, per_port=per_port)


def _selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def _inherit(own: MTLSMode | None, parent: MTLSMode) -> MTLSMode:
    return parent if own is None or own is MTLSMode.UNSET else own


def _oldest(policies: list[PeerAuthentication]) -> PeerAuthentication | None:
    if not policies:
        return None
    return min(policies, key=lambda policy: (creation_time(policy.creation_timestamp), policy.name))


def creation_time(timestamp: str | None) -> datetime:
    """A ``creationTimestamp`` as a time; absent or unreadable is the oldest (Go's zero time)."""
    if not timestamp:
        return _ZERO_TIME
    try:
        parsed = datetime.fromisoformat(timestamp)
    except ValueError:
        return _ZERO_TIME
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
