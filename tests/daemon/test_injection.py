from __future__ import annotations

import json
from typing import Any

import pytest

from meshlet.daemon.injection import (
    PROXY_CONTAINER,
    inject,
    injection_required,
    parse_user_volume_mounts,
    parse_user_volumes,
)
from meshlet.errors import ConfigError

MAP_VOLUMES = '{"tls-secret":{"secret":{"secretName":"httpbin-mtls-termination","optional":true}},"tls-ca-secret":{"secret":{"secretName":"httpbin-mtls-termination-cacert"}}}'
MAP_MOUNTS = '{"tls-secret":{"mountPath":"/etc/istio/tls-certs/","readOnly":true},"tls-ca-secret":{"mountPath":"/etc/istio/tls-ca-certs/","readOnly":true}}'
ARRAY_VOLUMES = '[{"name":"tls-secret","secret":{"secretName":"httpbin-mtls-termination","optional":true}},{"name":"tls-ca-secret","secret":{"secretName":"httpbin-mtls-termination-cacert"}}]'
ARRAY_MOUNTS = '[{"name":"tls-secret","mountPath":"/etc/istio/tls-certs/","readOnly":true},{"name":"tls-ca-secret","mountPath":"/etc/istio/tls-ca-certs/","readOnly":true}]'


def pod(
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    namespace: str = "test",
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "httpbin-5bbdbd6588-z9vbs",
            "namespace": namespace,
            "labels": {"app": "httpbin", "version": "v1", **(labels or {})},
            "annotations": dict(annotations or {}),
        },
        "spec": {
            "serviceAccountName": "httpbin",
            "containers": [{"name": "httpbin", "image": "docker.io/kennethreitz/httpbin"}],
        },
    }


@pytest.mark.parametrize(
    ("labels", "annotations", "namespace_labels", "expected"),
    [
        ({}, {}, {"istio-injection": "enabled"}, True),
        ({}, {}, {}, False),
        ({}, {}, {"istio-injection": "disabled"}, False),
        ({"sidecar.istio.io/inject": "false"}, {}, {"istio-injection": "enabled"}, False),
        ({}, {"sidecar.istio.io/inject": "false"}, {"istio-injection": "enabled"}, False),
        ({"sidecar.istio.io/inject": "true"}, {}, {}, True),
        ({}, {"sidecar.istio.io/inject": "true"}, {}, True),
        ({"sidecar.istio.io/inject": "true"}, {}, {"istio-injection": "disabled"}, False),
    ],
)
def test_injection_required(
    labels: dict[str, str],
    annotations: dict[str, str],
    namespace_labels: dict[str, str],
    expected: bool,
) -> None:
    assert injection_required(pod(labels, annotations), namespace_labels) is expected


def test_control_plane_and_host_network_pods_are_left_alone() -> None:
    assert not injection_required(pod(namespace="istio-system"), {"istio-injection": "enabled"})
    host = pod()
    host["spec"]["hostNetwork"] = True
    assert not injection_required(host, {"istio-injection": "enabled"})
    assert not injection_required(inject(pod()), {"istio-injection": "enabled"})


def test_inject_adds_the_proxy_container_and_its_volumes() -> None:
    original = pod()
    injected = inject(original)
    assert original["spec"]["containers"] == pod()["spec"]["containers"]  # not changed in place
    names = [c["name"] for c in injected["spec"]["containers"]]
    assert names == ["httpbin", PROXY_CONTAINER]
    proxy = injected["spec"]["containers"][1]
    assert proxy["securityContext"]["runAsGroup"] == 1337
    assert proxy["readinessProbe"]["httpGet"] == {
        "path": "/healthz/ready",
        "port": 15021,
        "scheme": "HTTP",
    }
    mounts = {m["mountPath"]: m["name"] for m in proxy["volumeMounts"]}
    assert mounts["/var/run/secrets/istio"] == "istiod-ca-cert"
    assert mounts["/var/run/secrets/tokens"] == "istio-token"
    volumes = {v["name"]: v for v in injected["spec"]["volumes"]}
    assert volumes["istiod-ca-cert"]["configMap"]["name"] == "istio-ca-root-cert"
    token = volumes["istio-token"]["projected"]["sources"][0]["serviceAccountToken"]
    assert token["audience"] == "istio-ca" and token["path"] == "istio-token"
    status = json.loads(injected["metadata"]["annotations"]["sidecar.istio.io/status"])
    assert status["containers"] == [PROXY_CONTAINER]
    assert injected["metadata"]["labels"]["security.istio.io/tlsMode"] == "istio"
    assert "--pod-name" in proxy["args"] and "$(POD_NAME)" in proxy["args"]
    # The sidecar reaches istiod's xDS on 15012, TLS with the mesh root, authenticated by
    # its token (then its certificate), as it reaches the CA.
    args = proxy["args"]
    assert args[args.index("--xds-address") + 1] == "istiod.istio-system.svc:15012"
    assert args[args.index("--ca-address") + 1] == "istiod.istio-system.svc:15012"
    assert args[args.index("--token") + 1] == "/var/run/secrets/tokens/istio-token"


@pytest.mark.parametrize(
    ("volumes", "mounts"), [(MAP_VOLUMES, MAP_MOUNTS), (ARRAY_VOLUMES, ARRAY_MOUNTS)]
)
def test_user_volumes_in_both_forms_go_to_the_proxy_only(volumes: str, mounts: str) -> None:
    annotations = {
        "sidecar.istio.io/userVolume": volumes,
        "sidecar.istio.io/userVolumeMount": mounts,
    }
    injected = inject(pod(annotations=annotations))
    app, proxy = injected["spec"]["containers"]
    assert "volumeMounts" not in app
    proxy_mounts = {m["name"]: m for m in proxy["volumeMounts"]}
    assert proxy_mounts["tls-secret"] == {
        "name": "tls-secret",
        "mountPath": "/etc/istio/tls-certs/",
        "readOnly": True,
    }
    assert proxy_mounts["tls-ca-secret"]["mountPath"] == "/etc/istio/tls-ca-certs/"
    by_name = {v["name"]: v for v in injected["spec"]["volumes"]}
    assert by_name["tls-secret"]["secret"] == {
        "secretName": "httpbin-mtls-termination",
        "optional": True,
    }
    assert by_name["tls-ca-secret"]["secret"] == {"secretName": "httpbin-mtls-termination-cacert"}


def test_both_forms_read_the_same() -> None:
    assert parse_user_volumes({"sidecar.istio.io/userVolume": MAP_VOLUMES}) == sorted(
        parse_user_volumes({"sidecar.istio.io/userVolume": ARRAY_VOLUMES}), key=lambda v: v["name"]
    )
    assert parse_user_volume_mounts({"sidecar.istio.io/userVolumeMount": MAP_MOUNTS}) == sorted(
        parse_user_volume_mounts({"sidecar.istio.io/userVolumeMount": ARRAY_MOUNTS}),
        key=lambda v: v["name"],
    )


@pytest.mark.parametrize(
    ("volumes", "mounts", "message"),
    [
        ("{not json", "", "invalid JSON"),
        ('"text"', "", "expected a JSON object or array"),
        ('[{"secret": {}}]', "", "needs a name"),
        ("", '{"x": {"mountPath": "/x"}}', "does not have"),
        ('{"x": {"emptyDir": {}}}', '{"x": {}}', "needs a mountPath"),
        ('{"istio-token": {"emptyDir": {}}}', "", "already defined"),
    ],
)
def test_bad_annotations_fail_injection(volumes: str, mounts: str, message: str) -> None:
    annotations = {}
    if volumes:
        annotations["sidecar.istio.io/userVolume"] = volumes
    if mounts:
        annotations["sidecar.istio.io/userVolumeMount"] = mounts
    with pytest.raises(ConfigError, match=message):
        inject(pod(annotations=annotations))


def test_proxy_metadata_becomes_the_proxy_environment() -> None:
    config = "proxyMetadata:\n  SECRET_TTL: 40s\n  ISTIO_META_DNS_CAPTURE: 'true'\n"
    injected = inject(pod(annotations={"proxy.istio.io/config": config}))
    proxy = next(c for c in injected["spec"]["containers"] if c["name"] == PROXY_CONTAINER)
    env = {e["name"]: e.get("value") for e in proxy["env"]}
    assert env["SECRET_TTL"] == "40s"
    assert env["ISTIO_META_DNS_CAPTURE"] == "true"
    app = next(c for c in injected["spec"]["containers"] if c["name"] == "httpbin")
    assert "env" not in app


@pytest.mark.parametrize("config", ["proxyMetadata: [a, b]", "proxyMetadata: {A: 1}", "{"])
def test_malformed_proxy_config_fails_injection(config: str) -> None:
    with pytest.raises(ConfigError, match=r"injection failed: annotation proxy.istio.io/config"):
        inject(pod(annotations={"proxy.istio.io/config": config}))
