"""Namespaces the analyzers leave alone, as Istio's analyzers do."""

from __future__ import annotations

from meshlet.resources.mesh import MeshSettings

__all__ = ["SYSTEM_NAMESPACES", "is_system_namespace"]

SYSTEM_NAMESPACES = frozenset(
    {"kube-system", "kube-public", "kube-node-lease", "local-path-storage"}
)


def is_system_namespace(namespace: str, mesh: MeshSettings) -> bool:
    """Kubernetes' own namespaces and the mesh's root (control-plane) namespace."""
    return namespace in SYSTEM_NAMESPACES or namespace == mesh.root_namespace
