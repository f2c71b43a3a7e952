"""The control plane inside the daemon: the mesh CA, the xDS server and pilot's snapshot.

Theory of operation: as istiod, the control plane listens on the node's address at
15012, TLS with the mesh root, for the CA (``meshlet.ca.server.CAServer``,
``CreateCertificate``) and the ADS service (``meshlet.xds.server.AdsServer``) on one
port: a sidecar proves its identity there with its mesh certificate or, before it has
one, its pod token, and gets only its own namespace's node config. The same ADS server
also serves plaintext at 15010 for the node's own tools. The daemon runs in the node's
network namespace, so both listen there and pods reach them as
``istiod.istio-system.svc`` through the ``istiod`` Service. ``snapshot_from_objects`` turns the stored objects
into pilot's ``Snapshot`` (typed models, pod IPs, Service VIPs, which pods run a
sidecar); the daemon calls it, debounced, whenever a relevant kind changes and hands
the result to the ADS server.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from meshlet.daemon.injection import PROXY_CONTAINER
from meshlet.errors import Location, MeshletError
from meshlet.pilot.snapshot import Snapshot, build_snapshot
from meshlet.resources import istio as istio_models
from meshlet.resources import k8s as k8s_models
from meshlet.resources.kinds import lookup
from meshlet.resources.mesh import MeshSettings
from meshlet.resources.objects import Resource
from meshlet.resources.yamlsource import Document

__all__ = [
    "ISTIOD_PORTS",
    "SNAPSHOT_KINDS",
    "istiod_service",
    "snapshot_from_objects",
]

log = logging.getLogger("meshlet.controlplane")

XDS_PORT = 15010
CA_PORT = 15012
ISTIOD_PORTS = (
    ("grpc-xds", 15010, 15010),
    ("https-dns", 15012, 15012),
    ("https-webhook", 443, 15017),
    ("http-monitoring", 15014, 15014),
)
SNAPSHOT_KINDS = frozenset(
    {
        "/Service",
        "/Pod",
        "networking.istio.io/Sidecar",
        "security.istio.io/PeerAuthentication",
        "networking.istio.io/DestinationRule",
    }
)


def istiod_service(namespace: str = "istio-system") -> dict[str, Any]:
    """The ``istiod`` Service: no selector; its endpoint is the node (the daemon)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "istiod",
            "namespace": namespace,
            "labels": {"app": "istiod", "istio": "pilot", "istio.io/rev": "default"},
        },
        "spec": {
            "ports": [
                {"name": name, "port": port, "protocol": "TCP", "targetPort": target}
                for name, port, target in ISTIOD_PORTS
            ]
        },
    }


def _resource(body: Mapping[str, Any]) -> Resource | None:
    info = lookup(str(body.get("apiVersion")), str(body.get("kind")))
    if info is None:
        return None
    namespace = (body.get("metadata") or {}).get("namespace")
    document = Document(body, Location("cluster"))
    return Resource(info, str(body.get("apiVersion")), body, document, namespace)


def _readable(resource: Resource) -> bool:
    """Whether the typed model can read ``resource`` (logged when it cannot)."""
    models: dict[str, Any] = {
        "Sidecar": istio_models.Sidecar,
        "PeerAuthentication": istio_models.PeerAuthentication,
        "DestinationRule": istio_models.DestinationRule,
    }
    try:
        models[resource.kind].from_resource(resource)
    except MeshletError as error:
        log.warning("%s is left out of the mesh config: %s", resource.ref, error)
        return False
    return True


def snapshot_from_objects(
    objects: Mapping[str, Sequence[Mapping[str, Any]]], mesh: MeshSettings
) -> Snapshot:
    """Pilot's snapshot of the stored objects (keyed by the store's kind)."""
    services: list[k8s_models.Service] = []
    pods: list[k8s_models.Pod] = []
    sidecars: list[istio_models.Sidecar] = []
    authns: list[istio_models.PeerAuthentication] = []
    rules: list[istio_models.DestinationRule] = []
    pod_ips: dict[tuple[str, str], str] = {}
    vips: dict[tuple[str, str], str] = {}
    with_sidecar: list[tuple[str, str]] = []
    for body in objects.get("/Service", ()):
        resource = _resource(body)
        if resource is None:
            continue
        service = k8s_models.Service.from_resource(resource)
        services.append(service)
        ip = (body.get("spec") or {}).get("clusterIP")
        if ip and ip != "None":
            vips[(service.namespace, service.name)] = str(ip)
    for body in objects.get("/Pod", ()):
        resource = _resource(body)
        if resource is None:
            continue
        pod = k8s_models.Pod.from_resource(resource)
        pods.append(pod)
        ip = (body.get("status") or {}).get("podIP")
        if ip:
            pod_ips[(pod.namespace, pod.name)] = str(ip)
        if any(c.name == PROXY_CONTAINER for c in pod.spec.containers):
            with_sidecar.append((pod.namespace, pod.name))
    for body in objects.get("networking.istio.io/Sidecar", ()):
        resource = _resource(body)
        if resource is not None and _readable(resource):
            sidecars.append(istio_models.Sidecar.from_resource(resource))
    for body in objects.get("security.istio.io/PeerAuthentication", ()):
        resource = _resource(body)
        if resource is not None and _readable(resource):
            authns.append(istio_models.PeerAuthentication.from_resource(resource))
    for body in objects.get("networking.istio.io/DestinationRule", ()):
        resource = _resource(body)
        if resource is not None and _readable(resource):
            rules.append(istio_models.DestinationRule.from_resource(resource))
    return build_snapshot(
        services=services,
        pods=pods,
        sidecars=sidecars,
        peer_authentications=authns,
        destination_rules=rules,
        mesh=mesh,
        pod_ips=pod_ips,
        service_vips=vips,
        pods_with_sidecar=with_sidecar,
    )
