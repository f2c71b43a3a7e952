"""Admission as the API server and istiod's webhook do it, over an in-memory store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from meshlet.cluster.protocol import ApiError
from meshlet.daemon.api import Api
from meshlet.daemon.injection import InjectionSettings
from meshlet.runtime.config import NodeConfig
from meshlet.store import ObjectKey, Store

SLEEP = Path(__file__).resolve().parents[2] / "samples" / "sleep" / "sleep.yaml"
STDIN = [{"file": "-"}]


@pytest.fixture
def api() -> Api:
    store = Store(":memory:")
    api = Api(store, NodeConfig(), injection=InjectionSettings, on_write=lambda: None)
    api.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}])
    return api


def namespace(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def sleep_docs() -> list[dict[str, Any]]:
    return list(yaml.safe_load_all(SLEEP.read_text()))


def test_apply_twice_is_unchanged_and_defaults_are_kept(api: Api) -> None:
    first = api.apply(sleep_docs(), "default", sources=[{"file": str(SLEEP)}] * 3)
    assert [r["action"] for r in first] == ["created"] * 3
    assert [(r["kind"], r["group"]) for r in first] == [
        ("ServiceAccount", ""),
        ("Service", ""),
        ("Deployment", "apps"),
    ]
    again = api.apply(sleep_docs(), "default")
    assert [r["action"] for r in again] == ["unchanged"] * 3
    (svc,) = api.get("/Service", "default", ["sleep"])
    assert svc["spec"]["clusterIP"] == "10.96.0.2" and svc["spec"]["clusterIPs"] == ["10.96.0.2"]
    assert svc["spec"]["ports"] == [
        {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 80}
    ]
    assert svc["spec"]["type"] == "ClusterIP"
    (deploy,) = api.get("apps/Deployment", "default", ["sleep"])
    pod_spec = deploy["spec"]["template"]["spec"]
    assert pod_spec["restartPolicy"] == "Always" and pod_spec["dnsPolicy"] == "ClusterFirst"


def test_a_changed_service_keeps_its_cluster_ip(api: Api) -> None:
    api.apply(sleep_docs(), "default")
    docs = sleep_docs()
    docs[1]["spec"]["ports"][0]["port"] = 8080
    assert api.apply([docs[1]], "default")[0]["action"] == "configured"
    assert api.get("/Service", "default", ["sleep"])[0]["spec"]["clusterIP"] == "10.96.0.2"
    docs[1]["spec"]["clusterIP"] = "10.96.0.99"
    with pytest.raises(ApiError, match="may not change once set"):
        api.apply([docs[1]], "default")


def test_cluster_ips_are_unique(api: Api) -> None:
    api.apply(sleep_docs(), "default")
    other = sleep_docs()[1]
    other["metadata"]["name"] = "other"
    api.apply([other], "default")
    ips = {s["spec"]["clusterIP"] for s in api.get("/Service", "default")}
    assert len(ips) == 2


def test_a_missing_namespace_refuses_with_kubectl_message(api: Api) -> None:
    with pytest.raises(ApiError) as caught:
        api.apply(sleep_docs(), "test", sources=STDIN * 3)
    assert (
        str(caught.value)
        == 'Error from server (NotFound): error when creating "STDIN": namespaces "test" not found'
    )
    assert api.get("/ServiceAccount", "test") == []


def test_a_namespace_made_in_the_same_request_counts(api: Api) -> None:
    results = api.apply([namespace("test"), *sleep_docs()], "test")
    assert [r["action"] for r in results] == ["created"] * 4


def test_one_invalid_object_refuses_them_all_with_the_api_server_words(api: Api) -> None:
    docs = sleep_docs()
    docs[1]["spec"]["ports"][0]["port"] = 0
    with pytest.raises(ApiError) as caught:
        api.apply(docs, "default")
    assert str(caught.value) == (
        'The Service "sleep" is invalid: spec.ports[0].port: Invalid value: 0: '
        "must be between 1 and 65535, inclusive"
    )
    assert api.get("/ServiceAccount", "default") == []


def test_istio_errors_are_the_webhook_s_and_warnings_come_back(api: Api) -> None:
    api.apply([namespace("test")])
    bad = {
        "apiVersion": "networking.istio.io/v1alpha3",
        "kind": "Sidecar",
        "metadata": {"name": "ingress-sidecar"},
        "spec": {
            "workloadSelector": {"labels": {"app": "httpbin"}},
            "ingress": [
                {
                    "port": {"number": 9080, "protocol": "HTTPS", "name": "external"},
                    "defaultEndpoint": "0.0.0.0:80",
                    "tls": {"mode": "MUTUAL", "privateKey": "/k", "serverCertificate": "/c"},
                }
            ],
        },
    }
    with pytest.raises(ApiError) as caught:
        api.apply([bad], "test", sources=STDIN)
    assert str(caught.value) == (
        'Error from server: error when creating "STDIN": admission webhook "validation.istio.io" '
        "denied the request: configuration is invalid: MUTUAL TLS requires a client CA bundle"
    )
    assert api.get("networking.istio.io/Sidecar", "test") == []
    warned = {
        "apiVersion": "security.istio.io/v1beta1",
        "kind": "PeerAuthentication",
        "metadata": {"name": "p"},
        "spec": {"selector": {"matchLabels": {}}, "mtls": {"mode": "STRICT"}},
    }
    (result,) = api.apply([warned], "test")
    assert result["warnings"] == ["workload selector specified without labels"]


def test_create_refuses_what_exists(api: Api) -> None:
    api.create([namespace("test")])
    with pytest.raises(ApiError) as caught:
        api.create([namespace("test")])
    assert (
        str(caught.value) == 'Error from server (AlreadyExists): namespaces "test" already exists'
    )
    assert caught.value.reason == "AlreadyExists"


def test_dry_run_stores_nothing(api: Api) -> None:
    results = api.apply(sleep_docs(), "default", dry_run=True)
    assert [r["action"] for r in results] == ["created"] * 3
    assert api.get("/Service", "default") == []


def test_pods_are_injected_at_creation_only(api: Api) -> None:
    api.apply([namespace("test", **{"istio-injection": "enabled"})])
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "labels": {"app": "x"}},
        "spec": {"containers": [{"name": "app", "image": "curlimages/curl"}]},
    }
    api.create([pod], "test")
    (stored,) = api.get("/Pod", "test", ["p"])
    assert [c["name"] for c in stored["spec"]["containers"]] == ["app", "istio-proxy"]
    api.apply([namespace("plain")])
    api.create([pod], "plain")
    api.label("/Namespace", None, "plain", {"istio-injection": "enabled"}, overwrite=False)
    api.label("/Pod", "plain", "p", {"a": "b"}, overwrite=False)
    (plain,) = api.get("/Pod", "plain", ["p"])
    assert [c["name"] for c in plain["spec"]["containers"]] == ["app"]


def test_label_overwrite_and_removal(api: Api) -> None:
    api.apply([namespace("test")])
    assert (
        api.label("/Namespace", None, "test", {"istio-injection": "enabled"}, overwrite=False)[
            "action"
        ]
        == "labeled"
    )
    assert (
        api.label("/Namespace", None, "test", {"istio-injection": "enabled"}, overwrite=False)[
            "action"
        ]
        == "not labeled"
    )
    with pytest.raises(
        ApiError,
        match=r"'istio-injection' already has a value \(enabled\), and --overwrite is false",
    ):
        api.label("/Namespace", None, "test", {"istio-injection": "disabled"}, overwrite=False)
    api.label("/Namespace", None, "test", {"istio-injection": None}, overwrite=False)
    (ns,) = api.get("/Namespace", None, ["test"])
    assert "istio-injection" not in ns["metadata"]["labels"]


def test_get_by_name_selector_and_unknown_kind(api: Api) -> None:
    api.apply(sleep_docs(), "default")
    with pytest.raises(ApiError) as caught:
        api.get("/Pod", "default", ["nope"])
    assert str(caught.value) == 'Error from server (NotFound): pods "nope" not found'
    assert caught.value.exit_code == 4
    with pytest.raises(ApiError) as deploy_missing:
        api.get("apps/Deployment", "default", ["nope"])
    assert 'deployments.apps "nope" not found' in str(deploy_missing.value)
    assert [s["metadata"]["name"] for s in api.get("/Service", None, selector="app=sleep")] == [
        "sleep"
    ]
    assert api.get("/Service", None, selector="app=other") == []
    with pytest.raises(ApiError, match="the server doesn't have a resource type"):
        api.get("/Widget", "default")


def test_deleting_a_namespace_deletes_everything_in_it(api: Api) -> None:
    api.apply([namespace("test"), *sleep_docs()], "test")
    results = api.delete("/Namespace", None, ["test"])
    assert results[0]["status"] == "Deleted"
    assert api.get("/Service", "test") == [] and api.get("/ServiceAccount", "test") == []
    assert api.store.get(ObjectKey("/Namespace", "", "test")) is None


def test_delete_reports_missing_names_and_fails_when_none_exists(api: Api) -> None:
    api.apply(sleep_docs(), "default")
    results = api.delete("/Service", "default", ["sleep", "nope"])
    assert [r["status"] for r in results] == ["Deleted", "NotFound"]
    assert results[1]["message"] == 'Error from server (NotFound): services "nope" not found'
    with pytest.raises(ApiError, match='services "sleep" not found'):
        api.delete("/Service", "default", ["sleep"])
