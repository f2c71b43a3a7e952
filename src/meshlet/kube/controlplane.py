"""The control plane as a process in a Kubernetes cluster (``python -m meshlet.kube``).

Theory of operation: one asyncio process, as istiod is one process.

- ``KubeConfigSource`` lists and watches the mesh's kinds; every change hands
  ``source.snapshot()`` to the ADS server (xDS on 15010), which debounces and pushes.
- The CA (15012) signs with the plug-in CA mounted from the ``cacerts`` Secret and
  authenticates pods by their projected tokens through the TokenReview API.
- The injector webhook (15017, TLS from the mesh CA) reads namespace labels from the
  Namespace cache.
- The root-certificate controller keeps an ``istio-ca-root-cert`` ConfigMap with the
  mesh root in every namespace (save the system ones) by server-side apply, whenever
  a Namespace or ConfigMap changes.
- ``/ready`` on 8080 answers 200 once every kind has been listed (the Deployment's
  readiness probe).

``ControlPlane.run`` starts everything, serves until cancelled, and stops every
server on the way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from meshlet.ca.server import CAServer
from meshlet.ca.signing import Signer
from meshlet.daemon.injection import EXCLUDED_NAMESPACES
from meshlet.errors import MeshletError
from meshlet.kube.client import APPLY_PATCH, KubeApi
from meshlet.kube.install import FIELD_MANAGER
from meshlet.kube.manifests import READY_PORT, ROOT_CERT_CONFIGMAP, root_cert_configmap
from meshlet.kube.settings import CA_PORT, WEBHOOK_PORT, XDS_PORT, KubeSettings
from meshlet.kube.source import KubeConfigSource
from meshlet.kube.tokenreview import TokenReviewer
from meshlet.kube.webhook import WebhookServer
from meshlet.xds.server import AdsServer

__all__ = ["ControlPlane", "Ports", "root_cert_wanted"]

log = logging.getLogger("meshlet.kube")


@dataclass(frozen=True, slots=True)
class Ports:
    xds: int = XDS_PORT
    ca: int = CA_PORT
    webhook: int = WEBHOOK_PORT
    ready: int = READY_PORT


def root_cert_wanted(
    namespaces: list[dict[str, Any]], configmaps: list[dict[str, Any]], root_pem: bytes
) -> list[str]:
    """The namespaces whose ``istio-ca-root-cert`` is missing or holds another root."""
    have: dict[str, Any] = {
        (cm.get("metadata") or {}).get("namespace", ""): (cm.get("data") or {}).get("root-cert.pem")
        for cm in configmaps
        if (cm.get("metadata") or {}).get("name") == ROOT_CERT_CONFIGMAP
    }
    wanted = []
    for namespace in namespaces:
        metadata = namespace.get("metadata") or {}
        name = str(metadata.get("name") or "")
        if not name or name in EXCLUDED_NAMESPACES or metadata.get("deletionTimestamp"):
            continue
        if have.get(name) != root_pem.decode("ascii"):
            wanted.append(name)
    return sorted(wanted)


class ControlPlane:
    """xDS, CA, webhook and the caches, for one cluster."""

    def __init__(self, api: KubeApi, settings: KubeSettings, signer: Signer) -> None:
        self.api = api
        self.settings = settings
        self.signer = signer
        self._roots_due = asyncio.Event()
        self.source = KubeConfigSource(api, settings.mesh, on_change=self._changed)
        self.ads = AdsServer()
        self.ca = CAServer(
            signer,
            os.urandom(32),  # pods on Kubernetes prove themselves with TokenReview
            trust_domain=settings.mesh.trust_domain,
            token_reviewer=TokenReviewer(api, trust_domain=settings.mesh.trust_domain),
            services=[self.ads.add_authenticated_service],  # xDS over TLS on 15012 too
        )
        self.webhook = WebhookServer(
            settings.injection(), signer, namespace_labels=self.source.namespace_labels
        )
        self.ports: Ports | None = None
        self.ready = asyncio.Event()
        self._runner: web.AppRunner | None = None

    def _changed(self, key: str) -> None:
        if key in ("/Namespace", "/ConfigMap"):
            self._roots_due.set()
        if self.ready.is_set():
            self.ads.update_snapshot(self.source.snapshot())

    async def _ready_handler(self, request: web.Request) -> web.Response:
        if self.ready.is_set():
            return web.Response(text="ready\n")
        return web.Response(status=503, text="the caches are not synced yet\n")

    async def start(self, host: str = "0.0.0.0", ports: Ports = Ports()) -> Ports:
        """Open every listener; returns the bound ports (0 picks free ones)."""
        xds = await self.ads.start(host, ports.xds)
        ca = await self.ca.start(host, ports.ca)
        webhook = await self.webhook.start(host, ports.webhook)
        app = web.Application()
        app.router.add_get("/ready", self._ready_handler)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, ports.ready)
        await site.start()
        ready = int(self._runner.addresses[0][1])
        self.ports = Ports(xds=xds, ca=ca, webhook=webhook, ready=ready)
        return self.ports

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        await self.webhook.stop()
        await self.ca.stop()
        await self.ads.stop()

    async def _serve_roots(self) -> None:
        while True:
            await self._roots_due.wait()
            self._roots_due.clear()
            caches = self.source.caches
            if not (caches["/Namespace"].synced and caches["/ConfigMap"].synced):
                continue
            for namespace in root_cert_wanted(
                caches["/Namespace"].items(), caches["/ConfigMap"].items(), self.signer.root_pem
            ):
                body = root_cert_configmap(namespace, self.signer.root_pem)
                try:
                    await self.api.request(
                        "PATCH",
                        f"/api/v1/namespaces/{namespace}/configmaps/{ROOT_CERT_CONFIGMAP}",
                        query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
                        body=body,
                        content_type=APPLY_PATCH,
                    )
                    log.info("wrote %s into %s", ROOT_CERT_CONFIGMAP, namespace)
                except MeshletError as error:
                    log.warning(
                        "cannot write %s into %s: %s", ROOT_CERT_CONFIGMAP, namespace, error
                    )
            await asyncio.sleep(0.2)  # let a burst of changes settle

    async def run(self, host: str = "0.0.0.0", ports: Ports = Ports()) -> None:
        """Start, serve until cancelled, stop."""
        await self.start(host, ports)
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self.source.run(), name="config source")
                group.create_task(self._serve_roots(), name="root certificates")
                await self.source.wait_synced()
                self.ads.update_snapshot(self.source.snapshot())
                self.ready.set()
                log.info("control plane ready: every kind listed")
        finally:
            with contextlib.suppress(Exception):
                await self.stop()
