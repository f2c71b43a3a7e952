from __future__ import annotations

from ipaddress import IPv4Address
from typing import Any

from meshlet.daemon.controllers.services import dns_table, service_endpoints, service_rules
from meshlet.runtime.services import Endpoint


def service(
    name: str = "httpbin", cluster_ip: str = "10.96.0.20", selector: dict[str, str] | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "clusterIP": cluster_ip,
        "ports": [
            {"name": "https", "port": 8443, "targetPort": 9080, "protocol": "TCP"},
            {"name": "http", "port": 8080, "targetPort": "web", "protocol": "TCP"},
        ],
    }
    if selector is not None:
        spec["selector"] = selector
    return {"metadata": {"name": name, "namespace": "test"}, "spec": spec}


def pod(
    name: str, ip: str, ready: bool = True, labels: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "test", "labels": labels or {"app": "httpbin"}},
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "ports": [{"name": "web", "containerPort": 8000, "protocol": "TCP"}],
                }
            ]
        },
        "status": {
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def test_endpoints_are_ready_selected_pods_at_their_target_ports() -> None:
    pods = [
        pod("a", "10.244.0.3"),
        pod("b", "10.244.0.2"),
        pod("c", "10.244.0.4", ready=False),
        pod("d", "10.244.0.5", labels={"app": "other"}),
    ]
    endpoints = service_endpoints(service(selector={"app": "httpbin"}), pods)
    assert endpoints["https"] == (
        Endpoint(IPv4Address("10.244.0.2"), 9080),
        Endpoint(IPv4Address("10.244.0.3"), 9080),
    )
    assert endpoints["http"] == (
        Endpoint(IPv4Address("10.244.0.2"), 8000),
        Endpoint(IPv4Address("10.244.0.3"), 8000),
    )


def test_a_service_without_selector_takes_manual_endpoints() -> None:
    istiod = {
        "metadata": {"name": "istiod", "namespace": "istio-system"},
        "spec": {
            "clusterIP": "10.96.0.5",
            "ports": [{"name": "https-dns", "port": 15012, "targetPort": 15012}],
        },
    }
    manual = {("istio-system", "istiod"): [IPv4Address("10.244.0.1")]}
    (rule,) = service_rules([istiod], [], manual)
    assert rule.endpoints == (Endpoint(IPv4Address("10.244.0.1"), 15012),)
    assert rule.cluster_ip == IPv4Address("10.96.0.5") and rule.port == 15012


def test_rules_for_every_port_and_none_for_headless() -> None:
    rules = service_rules(
        [service(selector={"app": "httpbin"}), service("headless", "None", {"app": "httpbin"})],
        [pod("a", "10.244.0.2")],
    )
    assert [(r.name, r.port) for r in rules] == [("httpbin", 8080), ("httpbin", 8443)]


def test_dns_names_cluster_ips_and_headless_pods() -> None:
    table = dns_table(
        [service(selector={"app": "httpbin"}), service("headless", "None", {"app": "httpbin"})],
        [pod("a", "10.244.0.2"), pod("b", "10.244.0.3", ready=False)],
    )
    assert table["httpbin.test.svc.cluster.local"] == (IPv4Address("10.96.0.20"),)
    assert table["headless.test.svc.cluster.local"] == (IPv4Address("10.244.0.2"),)
