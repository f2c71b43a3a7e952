"""The control plane's config source on Kubernetes: one cache per kind, one snapshot.

Theory of operation: ``KubeConfigSource`` runs one ``Reflector`` per kind of
``watchstate.KIND_SPECS`` (all namespaces), each filling its ``KindCache``. Whenever
a cache changes, ``on_change`` is called; the control plane then asks for
``snapshot()``, which hands the caches, keyed by the local store's kind names, to
``meshlet.daemon.controlplane.snapshot_from_objects``: the very function the local
cluster's daemon feeds from its SQLite store, so pilot sees the same snapshot
whichever engine holds the objects (pod IPs from ``status.podIP``, Service VIPs from
``spec.clusterIP``, sidecars from the pods' ``istio-proxy`` containers). The ADS
server debounces the pushes, so calling it on every event is cheap.

``wait_synced`` returns once every kind has been listed; the control plane reports
ready only then.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from meshlet.daemon.controlplane import snapshot_from_objects
from meshlet.kube.client import KubeApi
from meshlet.kube.reflector import Reflector
from meshlet.kube.watchstate import KIND_SPECS, KindCache, KindSpec
from meshlet.pilot.snapshot import Snapshot
from meshlet.resources.mesh import MeshSettings

__all__ = ["KubeConfigSource"]


class KubeConfigSource:
    """Lists and watches the mesh's kinds; answers pilot's snapshot."""

    def __init__(
        self,
        api: KubeApi,
        mesh: MeshSettings,
        *,
        specs: Sequence[KindSpec] = KIND_SPECS,
        on_change: Callable[[str], None] = lambda key: None,
        **reflector_options: Any,
    ) -> None:
        self.mesh = mesh
        self.caches: dict[str, KindCache] = {spec.key: KindCache(spec) for spec in specs}
        self._on_change = on_change
        self.reflectors = {
            key: Reflector(
                api,
                cache,
                on_change=lambda key=key: self._on_change(key),  # type: ignore[misc]
                **reflector_options,
            )
            for key, cache in self.caches.items()
        }

    async def run(self) -> None:
        """Run every reflector until cancelled."""
        async with asyncio.TaskGroup() as group:
            for key, reflector in self.reflectors.items():
                group.create_task(reflector.run(), name=f"reflector {key}")

    async def wait_synced(self) -> None:
        for reflector in self.reflectors.values():
            await reflector.synced.wait()

    def objects(self) -> Mapping[str, list[dict[str, Any]]]:
        """Every cached object, by the store's kind name."""
        return {key: cache.items() for key, cache in self.caches.items()}

    def snapshot(self) -> Snapshot:
        return snapshot_from_objects(self.objects(), self.mesh)

    def namespace_labels(self, namespace: str) -> Mapping[str, str] | None:
        """A namespace's labels, or ``None`` when it is not (yet) known."""
        cache = self.caches.get("/Namespace")
        found = cache.get("", namespace) if cache is not None else None
        if found is None:
            return None
        return dict((found.get("metadata") or {}).get("labels") or {})
