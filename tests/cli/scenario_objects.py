"""The reference scenario's objects as the cluster reports them (for get, describe, exec)."""

from __future__ import annotations

from typing import Any


def pod(
    name: str,
    namespace: str,
    created: str,
    *,
    containers: tuple[str, ...] = ("sleep",),
    app: str = "sleep",
    ip: str = "10.244.0.5",
    image: str = "curlimages/curl",
    waiting: tuple[str, str] | None = None,
) -> dict[str, Any]:
    statuses = []
    for container in containers:
        state: dict[str, Any] = {"running": {"startedAt": created}}
        if waiting and container == containers[0]:
            state = {"waiting": {"reason": waiting[0], "message": waiting[1]}}
        statuses.append(
            {
                "name": container,
                "image": image if container == containers[0] else "docker.io/istio/proxyv2:1.24.0",
                "imageID": "",
                "ready": waiting is None or container != containers[0],
                "restartCount": 0,
                "started": waiting is None,
                "state": state,
                "lastState": {},
            }
        )
    ready = "False" if waiting else "True"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "creationTimestamp": created,
            "labels": {"app": app, "pod-template-hash": name.split("-")[1]},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": name.rsplit("-", 1)[0],
                    "controller": True,
                }
            ],
        },
        "spec": {
            "serviceAccountName": app,
            "nodeName": "meshlet",
            "containers": [
                {
                    "name": c,
                    "image": image if c == containers[0] else "docker.io/istio/proxyv2:1.24.0",
                    "ports": [{"containerPort": 80, "protocol": "TCP"}]
                    if app == "httpbin" and c == containers[0]
                    else [],
                    "command": ["/bin/sleep", "infinity"]
                    if app == "sleep" and c == containers[0]
                    else [],
                }
                for c in containers
            ],
        },
        "status": {
            "phase": "Pending" if waiting else "Running",
            "hostIP": "10.244.0.1",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "startTime": created,
            "qosClass": "BestEffort",
            "conditions": [
                {"type": "Initialized", "status": "True"},
                {"type": "Ready", "status": ready},
                {"type": "ContainersReady", "status": ready},
                {"type": "PodScheduled", "status": "True"},
            ],
            "containerStatuses": statuses,
        },
    }


def service(
    name: str, namespace: str, created: str, ip: str, ports: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "creationTimestamp": created,
            "labels": {"app": name, "service": name},
        },
        "spec": {
            "type": "ClusterIP",
            "clusterIP": ip,
            "clusterIPs": [ip],
            "ports": ports,
            "selector": {"app": name},
            "sessionAffinity": "None",
        },
    }


def scenario_objects() -> list[dict[str, Any]]:
    return [
        pod("sleep-557747455f-xx88g", "default", "2022-10-24T09:09:46Z"),
        pod(
            "httpbin-5bbdbd6588-z9vbs",
            "test",
            "2022-10-24T09:05:16Z",
            containers=("httpbin", "istio-proxy"),
            app="httpbin",
            ip="10.244.0.7",
            image="docker.io/kennethreitz/httpbin",
        ),
        pod(
            "sleep-557747455f-brzf6",
            "test",
            "2022-10-24T09:07:03Z",
            containers=("sleep", "istio-proxy"),
            ip="10.244.0.8",
        ),
        service(
            "httpbin",
            "test",
            "2022-10-24T09:04:00Z",
            "10.100.78.113",
            [
                {"name": "https", "port": 8443, "protocol": "TCP", "targetPort": 9080},
                {"name": "http", "port": 8080, "protocol": "TCP", "targetPort": 9081},
            ],
        ),
        service(
            "sleep",
            "test",
            "2022-10-24T09:05:11Z",
            "10.110.35.153",
            [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 80}],
        ),
    ]
