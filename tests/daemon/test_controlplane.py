"""Pilot's snapshot from the objects the daemon stores."""

from __future__ import annotations

import copy
from typing import Any

from meshlet.daemon.api import Api
from meshlet.daemon.controlplane import istiod_service, snapshot_from_objects
from meshlet.daemon.injection import InjectionSettings
from meshlet.resources.mesh import MeshSettings
from meshlet.runtime.config import NodeConfig
from meshlet.store import Store

SIDECAR = {
    "apiVersion": "networking.istio.io/v1alpha3",
    "kind": "Sidecar",
    "metadata": {"name": "ingress-sidecar"},
    "spec": {
        "workloadSelector": {"labels": {"app": "httpbin"}},
        "ingress": [
            {
                "port": {"number": 9081, "protocol": "HTTP", "name": "internal"},
                "defaultEndpoint": "0.0.0.0:80",
            }
        ],
    },
}


def stored(api: Api) -> dict[str, list[Any]]:
    kinds = [
        "/Service",
        "/Pod",
        "networking.istio.io/Sidecar",
        "security.istio.io/PeerAuthentication",
    ]
    return {kind: [o.body for o in api.store.list_kind(kind)] for kind in kinds}


def test_snapshot_has_running_pods_with_sidecars_services_and_sidecars() -> None:
    api = Api(Store(":memory:"), NodeConfig(), injection=InjectionSettings, on_write=lambda: None)
    api.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": "test", "labels": {"istio-injection": "enabled"}},
            }
        ]
    )
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "httpbin"},
        "spec": {
            "selector": {"app": "httpbin"},
            "ports": [{"name": "http", "port": 8080, "targetPort": 9081}],
        },
    }
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "httpbin-1", "labels": {"app": "httpbin"}},
        "spec": {
            "containers": [
                {
                    "name": "httpbin",
                    "image": "kennethreitz/httpbin",
                    "ports": [{"containerPort": 80}],
                }
            ]
        },
    }
    pending = copy.deepcopy(pod)
    pending["metadata"]["name"] = "httpbin-2"
    api.apply([service, pod, pending, SIDECAR], "test")
    objects = stored(api)
    for body in objects["/Pod"]:
        if body["metadata"]["name"] == "httpbin-1":
            body["status"] = {"podIP": "10.244.0.7"}
    snapshot = snapshot_from_objects(objects, MeshSettings(enable_tls_on_sidecar_ingress=True))
    workload = snapshot.workload("test", "httpbin-1")
    assert workload is not None and workload.has_sidecar and workload.ip == "10.244.0.7"
    assert snapshot.workload("test", "httpbin-2") is None  # no IP yet: not running
    (mesh_service,) = snapshot.services
    assert mesh_service.hostname == "httpbin.test.svc.cluster.local"
    assert [s.name for s in snapshot.sidecars] == ["ingress-sidecar"]
    assert snapshot.mesh.enable_tls_on_sidecar_ingress


def test_the_istiod_service_points_at_the_control_plane_ports() -> None:
    service = istiod_service()
    assert service["metadata"]["namespace"] == "istio-system"
    assert "selector" not in service["spec"]
    assert {p["port"] for p in service["spec"]["ports"]} >= {15010, 15012, 15014}
