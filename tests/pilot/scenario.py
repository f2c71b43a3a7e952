"""The reference scenario as a snapshot, with fixed pod IPs and Service VIPs.

httpbin and an in-mesh sleep run in namespace ``test`` with sidecars; a second sleep
runs in ``default`` without one. The manifests are the repository's own
(``examples/sidecar-tls-termination`` and ``samples/sleep``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from meshlet.pilot.snapshot import Proxy, Snapshot, build_snapshot
from meshlet.resources import istio, k8s
from meshlet.resources.loader import decode_text
from meshlet.resources.mesh import MeshSettings
from meshlet.resources.objects import Resource
from tests import manifests

HTTPBIN_POD = "httpbin-5bbdbd6588-z9vbs"
SLEEP_POD = "sleep-557747455f-brzf6"
EXTERNAL_SLEEP_POD = "sleep-557747455f-xx88g"

HTTPBIN_IP = "10.244.0.7"
SLEEP_IP = "10.244.0.8"
EXTERNAL_SLEEP_IP = "10.244.0.9"
HTTPBIN_VIP = "10.100.78.113"
SLEEP_VIP = "10.110.35.153"
EXTERNAL_SLEEP_VIP = "10.96.0.80"

POD_NAMES = {
    ("test", "httpbin"): HTTPBIN_POD,
    ("test", "sleep"): SLEEP_POD,
    ("default", "sleep"): EXTERNAL_SLEEP_POD,
}
POD_IPS = {
    ("test", HTTPBIN_POD): HTTPBIN_IP,
    ("test", SLEEP_POD): SLEEP_IP,
    ("default", EXTERNAL_SLEEP_POD): EXTERNAL_SLEEP_IP,
}
SERVICE_VIPS = {
    ("test", "httpbin"): HTTPBIN_VIP,
    ("test", "sleep"): SLEEP_VIP,
    ("default", "sleep"): EXTERNAL_SLEEP_VIP,
}


def load(path: Path, namespace: str) -> list[Resource]:
    return [r.in_namespace(namespace) for r in decode_text(path.read_text(), str(path))]


def scenario_resources() -> list[Resource]:
    resources: list[Resource] = []
    for path in sorted(manifests.EXAMPLE.glob("*.yaml")):
        resources.extend(load(path, "test"))
    resources.extend(load(manifests.SAMPLE_SLEEP_PATH, "test"))
    resources.extend(load(manifests.SAMPLE_SLEEP_PATH, "default"))
    return resources


def snapshot_of(
    resources: Iterable[Resource],
    *,
    mesh: MeshSettings | None = None,
    pod_names: dict[tuple[str, str], str] | None = None,
    pod_ips: dict[tuple[str, str], str] | None = None,
    service_vips: dict[tuple[str, str], str] | None = None,
    sidecar_namespaces: tuple[str, ...] = ("test",),
) -> Snapshot:
    """A snapshot with one pod per Deployment (named from ``pod_names``)."""
    names = POD_NAMES if pod_names is None else pod_names
    services, pods, sidecars, policies, rules = [], [], [], [], []
    for resource in resources:
        match resource.kind:
            case "Service":
                services.append(k8s.Service.from_resource(resource))
            case "Deployment":
                deployment = k8s.Deployment.from_resource(resource)
                key = (deployment.namespace, deployment.name)
                pods.append(
                    k8s.Pod(
                        name=names.get(key, f"{deployment.name}-0"),
                        namespace=deployment.namespace,
                        labels=deployment.template.labels,
                        annotations=deployment.template.annotations,
                        spec=deployment.template.spec,
                    )
                )
            case "Pod":
                pods.append(k8s.Pod.from_resource(resource))
            case "Sidecar":
                sidecars.append(istio.Sidecar.from_resource(resource))
            case "PeerAuthentication":
                policies.append(istio.PeerAuthentication.from_resource(resource))
            case "DestinationRule":
                rules.append(istio.DestinationRule.from_resource(resource))
    return build_snapshot(
        services=services,
        pods=pods,
        sidecars=sidecars,
        peer_authentications=policies,
        destination_rules=rules,
        mesh=mesh or replace(MeshSettings(), enable_tls_on_sidecar_ingress=True),
        pod_ips=POD_IPS if pod_ips is None else pod_ips,
        service_vips=SERVICE_VIPS if service_vips is None else service_vips,
        pods_with_sidecar=[
            pod for pod in (POD_IPS if pod_ips is None else pod_ips) if pod[0] in sidecar_namespaces
        ],
    )


def scenario_snapshot(mesh: MeshSettings | None = None) -> Snapshot:
    return snapshot_of(scenario_resources(), mesh=mesh)


def httpbin_proxy(snapshot: Snapshot) -> Proxy:
    return snapshot.proxy("test", HTTPBIN_POD)


def sleep_proxy(snapshot: Snapshot) -> Proxy:
    return snapshot.proxy("test", SLEEP_POD)
