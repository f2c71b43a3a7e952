"""Which PeerAuthentication decides the mTLS mode of a port, and where a fix goes.

``meshlet.pilot.authn.compose_peer_authentication`` gives the mode; this module names
the policy behind it, following the same precedence (its docstring): the workload
policy's ``portLevelMtls`` entry for the port, else the first of the workload,
namespace and mesh policies (the oldest at each level) whose mode is set, else no
policy at all (Istio's default, PERMISSIVE).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from meshlet.analyzers.context import Context, Sourced, selects
from meshlet.pilot.authn import creation_time
from meshlet.pilot.snapshot import Workload
from meshlet.resources.istio import MTLSMode, PeerAuthentication
from meshlet.resources.objects import Resource
from meshlet.resources.yamlsource import Path

__all__ = ["PortMode", "describe_mode", "port_level_path", "port_mode"]


@dataclass(frozen=True, slots=True)
class PortMode:
    """The mode of one container port and what decides it.

    ``workload_policy`` is the workload-level policy in effect (where a
    ``portLevelMtls`` entry would go), and ``workload_mode`` the workload's mode
    without port-level settings.
    """

    port: int
    mode: MTLSMode
    decided_by: Sourced[PeerAuthentication] | None
    port_level: bool
    workload_policy: Sourced[PeerAuthentication] | None
    workload_mode: MTLSMode


def _oldest(
    policies: Sequence[Sourced[PeerAuthentication]],
) -> Sourced[PeerAuthentication] | None:
    if not policies:
        return None
    return min(policies, key=lambda p: (creation_time(p.value.creation_timestamp), p.value.name))


def _is_set(mode: MTLSMode | None) -> bool:
    return mode is not None and mode is not MTLSMode.UNSET


def port_mode(context: Context, workload: Workload, port: int) -> PortMode:
    """The mode of ``port`` on ``workload`` and the policy that decides it."""
    root = context.mesh.root_namespace
    mesh: list[Sourced[PeerAuthentication]] = []
    namespace: list[Sourced[PeerAuthentication]] = []
    selecting: list[Sourced[PeerAuthentication]] = []
    for policy in context.peer_authentications:
        value = policy.value
        if value.namespace == root:
            if not value.selector:
                mesh.append(policy)
        elif value.namespace == workload.namespace:
            if not value.selector:
                namespace.append(policy)
            elif selects(value.selector, workload.labels):
                selecting.append(policy)
    levels = (_oldest(selecting), _oldest(namespace), _oldest(mesh))
    composed = context.snapshot.mtls_for(workload)
    workload_policy = levels[0]
    decided_by = None
    port_level = False
    if workload_policy is not None and _is_set(workload_policy.value.port_level_mtls.get(port)):
        decided_by, port_level = workload_policy, True
    else:
        decided_by = next((p for p in levels if p is not None and _is_set(p.value.mtls_mode)), None)
    return PortMode(
        port=port,
        mode=composed.for_port(port),
        decided_by=decided_by,
        port_level=port_level,
        workload_policy=workload_policy,
        workload_mode=composed.mode,
    )


def describe_mode(context: Context, mode: PortMode) -> str:
    """``STRICT, set by PeerAuthentication test/default (pa.yaml:3)`` and the like."""
    if mode.decided_by is None:
        return f"{mode.mode.value} (no PeerAuthentication applies: Istio's default)"
    where = context.where(mode.decided_by.resource, _mode_path(mode))
    field = f"portLevelMtls {mode.port}" if mode.port_level else "mtls"
    return f"{mode.mode.value}, set by the {field} of {where}"


def _mode_path(mode: PortMode) -> Path:
    if mode.decided_by is None:
        return ()
    if mode.port_level:
        return port_level_path(mode.decided_by.resource, mode.port)
    return ("spec", "mtls")


def port_level_path(resource: Resource, port: int) -> Path:
    """Where the ``portLevelMtls`` entry of ``port`` is written (the key as written)."""
    raw = resource.spec.get("portLevelMtls")
    for key in raw if isinstance(raw, Mapping) else {}:
        if isinstance(key, str | int) and str(key).strip() == str(port):
            return ("spec", "portLevelMtls", key)
    return ("spec", "portLevelMtls")
