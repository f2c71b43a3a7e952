"""Core ``v1`` kinds: Namespace, ServiceAccount, Service, Pod, Secret, ConfigMap."""

from __future__ import annotations

from meshlet.resources.kinds._registry import KindInfo
from meshlet.resources.kinds.meta import top_level
from meshlet.resources.schema import STRING, ListOf, Obj

__all__ = ["KINDS"]

NAMESPACE = KindInfo(
    group="",
    versions=("v1",),
    kind="Namespace",
    plural="namespaces",
    namespaced=False,
    short_names=("ns",),
    schema=top_level(
        "Namespace",
        spec=Obj("NamespaceSpec", {"finalizers": ListOf(STRING)}),
        status=Obj("NamespaceStatus", {"phase": STRING}),  # TODO(core_v1): conditions
    ),
)

KINDS: tuple[KindInfo, ...] = (NAMESPACE,)
