"""Standalone config from Sidecar YAML, the config dump and the operator renderings (no sockets)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2, tls_pb2

from meshlet.errors import ConfigError, ErrorList, MeshletError
from meshlet.proxy.admin import merge_worker_stats, render_listeners, render_prometheus
from meshlet.proxy.config_dump import (
    Dumped,
    SecretState,
    build_config_dump,
    render_config_dump,
    static_pipe_cluster,
)
from meshlet.proxy.standalone import build_standalone_config
from meshlet.resources.loader import decode_text

SIDECAR = """\
apiVersion: networking.istio.io/v1alpha3
kind: Sidecar
metadata:
  name: ingress-sidecar
  namespace: test
spec:
  workloadSelector:
    labels:
      app: httpbin
  ingress:
  - port:
      number: 9080
      protocol: HTTPS
      name: external
    bind: 127.0.0.1
    defaultEndpoint: 0.0.0.0:8000
    tls:
      mode: {mode}
      privateKey: /certs/tls.key
      serverCertificate: /certs/tls.crt
      caCertificates: /ca/ca.crt
  - port:
      number: 9081
      protocol: HTTP
      name: internal
    defaultEndpoint: 127.0.0.1:8001
"""

PEER_AUTHENTICATION = """\
---
apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata:
  name: default
  namespace: test
spec:
  mtls:
    mode: {mode}
"""


def _config(text: str):  # type: ignore[no-untyped-def]
    return build_standalone_config(decode_text(text, "sidecar.yaml"))


def _error(text: str) -> MeshletError:
    with pytest.raises((ConfigError, ErrorList)) as caught:
        _config(text)
    error = caught.value
    return error.errors[0] if isinstance(error, ErrorList) else error


def test_each_ingress_port_is_a_bound_listener_from_pilots_chains() -> None:
    config = _config(SIDECAR.format(mode="MUTUAL"))
    assert config.node_id == "sidecar~127.0.0.1~ingress-sidecar.test~test.svc.cluster.local"
    names = [listener.name for listener in config.listeners]
    assert names == ["0.0.0.0_9081", "127.0.0.1_9080"]
    tls_listener = config.listeners[1]
    address = tls_listener.address.socket_address
    assert (address.address, address.port_value) == ("127.0.0.1", 9080)
    assert not tls_listener.use_original_dst.value
    [chain] = tls_listener.filter_chains
    assert chain.name == "127.0.0.1_9080"
    assert chain.filter_chain_match.transport_protocol == "tls"
    context = tls_pb2.DownstreamTlsContext()
    chain.transport_socket.typed_config.Unpack(context)
    assert context.require_client_certificate.value
    common = context.common_tls_context
    assert list(common.alpn_protocols) == ["h2", "http/1.1"]
    assert common.tls_certificate_sds_secret_configs[0].name == (
        "file-cert:/certs/tls.crt~/certs/tls.key"
    )
    assert (
        common.combined_validation_context.validation_context_sds_secret_config.name
        == "file-root:/ca/ca.crt"
    )
    # plain HTTP on the other port: mTLS is DISABLE without a mesh identity
    [plain] = config.listeners[0].filter_chains
    assert plain.filter_chain_match.transport_protocol == "raw_buffer"


def test_default_endpoint_on_the_instance_ip_is_the_loopback() -> None:
    clusters = {c.name: c for c in _config(SIDECAR.format(mode="SIMPLE")).clusters}
    for name, port in (("inbound|9080||", 8000), ("inbound|9081||", 8001)):
        endpoint = clusters[name].load_assignment.endpoints[0].lb_endpoints[0].endpoint
        assert endpoint.address.socket_address.address == "127.0.0.1"
        assert endpoint.address.socket_address.port_value == port
        assert clusters[name].upstream_bind_config.source_address.address == "127.0.0.6"


def test_peer_authentication_disable_is_accepted() -> None:
    text = SIDECAR.format(mode="MUTUAL") + PEER_AUTHENTICATION.format(mode="DISABLE")
    assert len(_config(text).listeners) == 2


@pytest.mark.parametrize("mode", ["STRICT", "PERMISSIVE"])
def test_mesh_mtls_is_refused_without_a_mesh_identity(mode: str) -> None:
    error = _error(SIDECAR.format(mode="MUTUAL") + PEER_AUTHENTICATION.format(mode=mode))
    assert str(error.location) == "sidecar.yaml:35"
    assert error.message.startswith(f"mTLS mode {mode} needs a mesh identity")
    assert str(error.resource) == "PeerAuthentication test/default"


def test_istios_validation_message_names_the_line() -> None:
    error = _error(SIDECAR.format(mode="ISTIO_MUTUAL"))
    assert str(error).startswith("sidecar.yaml:")
    assert "cannot set mode to ISTIO_MUTUAL in sidecar ingress tls" in error.message


def test_an_ingress_without_default_endpoint_is_refused() -> None:
    text = SIDECAR.format(mode="SIMPLE").replace("    defaultEndpoint: 127.0.0.1:8001\n", "")
    error = _error(text)
    assert "9081 has no defaultEndpoint" in error.message
    assert str(error.location) == "sidecar.yaml:22"


def test_other_kinds_are_refused() -> None:
    text = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n"
    assert "not Namespace" in _error(text).message


# --- config dump -----------------------------------------------------------------------

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _dump():  # type: ignore[no-untyped-def]
    config = _config(SIDECAR.format(mode="MUTUAL"))
    secret = secret_pb2.Secret(name="file-cert:/certs/tls.crt~/certs/tls.key")
    secret.tls_certificate.certificate_chain.inline_bytes = b"CHAIN"
    secret.tls_certificate.private_key.inline_bytes = b"SECRET KEY"
    return build_config_dump(
        node=base_pb2.Node(id=config.node_id),
        bootstrap_time=NOW,
        static_clusters=[static_pipe_cluster("sds-grpc", "/run/socket")],
        clusters=[Dumped(c, "v1", NOW) for c in config.clusters],
        cluster_version="v1",
        listeners=[Dumped(listener, "v2", NOW) for listener in config.listeners],
        warming_listeners=["0.0.0.0_9081"],
        listener_version="v2",
        routes=[],
        secrets=[
            SecretState(secret.name, secret, "s1", NOW),
            SecretState("file-root:/ca/ca.crt", None, error="cannot read /ca/ca.crt"),
        ],
    )


def test_config_dump_is_envoys_and_redacts_keys() -> None:
    status, body = render_config_dump(_dump())
    assert status == 200
    assert body.startswith(b'{\n "configs": [\n  {\n   "@type"')
    configs = json.loads(body)["configs"]
    assert [c["@type"].rsplit(".", 1)[-1] for c in configs] == [
        "BootstrapConfigDump",
        "ClustersConfigDump",
        "ListenersConfigDump",
        "ScopedRoutesConfigDump",
        "RoutesConfigDump",
        "SecretsConfigDump",
    ]
    secrets = configs[5]
    [active] = secrets["dynamic_active_secrets"]
    key = active["secret"]["tls_certificate"]["private_key"]["inline_bytes"]
    assert base64.b64decode(key) == b"[redacted]"
    assert b"SECRET KEY" not in body
    assert active["last_updated"] == "2026-01-02T03:04:05Z"
    [warming] = secrets["dynamic_warming_secrets"]
    assert warming["error_state"]["details"] == "cannot read /ca/ca.crt"
    listeners = {entry["name"]: entry for entry in configs[2]["dynamic_listeners"]}
    assert "warming_state" in listeners["0.0.0.0_9081"]
    assert listeners["127.0.0.1_9080"]["active_state"]["version_info"] == "v2"


def test_mask_keeps_only_the_configs_it_fits() -> None:
    status, body = render_config_dump(
        _dump(), mask="dynamic_active_secrets,dynamic_warming_secrets"
    )
    assert status == 200
    [config] = json.loads(body)["configs"]
    assert set(config) == {"@type", "dynamic_active_secrets", "dynamic_warming_secrets"}
    status, body = render_config_dump(_dump(), mask="no_such_field")
    assert status == 400
    assert body == b"FieldMask no_such_field could not be successfully applied to any configs."


def test_resource_lists_elements_and_masks_inside_them() -> None:
    status, body = render_config_dump(
        _dump(), resource="dynamic_active_clusters", mask="cluster.name"
    )
    assert status == 200
    configs = json.loads(body)["configs"]
    assert [c["cluster"]["name"] for c in configs] == [
        "BlackHoleCluster",
        "InboundPassthroughCluster",
        "PassthroughCluster",
        "inbound|9080||",
        "inbound|9081||",
    ]
    assert set(configs[0]["cluster"]) == {"@type", "name"}
    assert render_config_dump(_dump(), resource="nothing")[0] == 404
    assert render_config_dump(_dump(), resource="version_info")[0] == 400
    status, body = render_config_dump(
        _dump(), resource="dynamic_active_clusters", name_regex="^inbound"
    )
    assert len(json.loads(body)["configs"]) == 2


# --- stats -----------------------------------------------------------------------------

WORKERS = [
    {
        "worker": 0,
        "listeners": {
            "127.0.0.1_9080": {
                "address": "127.0.0.1:9080",
                "active_connections": 1,
                "stats": {"downstream_cx_total": 3, "ssl.handshake": 2},
            }
        },
        "stats": {},
    },
    {
        "worker": 1,
        "listeners": {
            "127.0.0.1_9080": {
                "address": "127.0.0.1:9080",
                "active_connections": 0,
                "stats": {"downstream_cx_total": 4},
            }
        },
        "stats": {},
    },
]


def test_worker_counters_are_summed_and_kept_per_worker() -> None:
    stats = merge_worker_stats(WORKERS)
    assert stats["listener.127.0.0.1_9080.downstream_cx_total"] == 7
    assert stats["listener.127.0.0.1_9080.downstream_cx_active"] == 1
    assert stats["listener.127.0.0.1_9080.ssl.handshake"] == 2
    assert stats["listener.127.0.0.1_9080.worker_0.downstream_cx_total"] == 3
    assert stats["listener.127.0.0.1_9080.worker_1.downstream_cx_total"] == 4


def test_prometheus_uses_envoys_names_and_labels() -> None:
    text = render_prometheus(merge_worker_stats(WORKERS)).decode()
    assert "# TYPE envoy_listener_downstream_cx_total counter" in text
    assert 'envoy_listener_downstream_cx_total{envoy_listener_address="127.0.0.1_9080"} 7' in text
    assert (
        'envoy_listener_worker_downstream_cx_total{envoy_listener_address="127.0.0.1_9080",'
        'envoy_worker_id="1"} 4'
    ) in text
    assert "# TYPE envoy_listener_downstream_cx_active gauge" in text
    assert 'istio_build{component="proxy"' in text


def test_listeners_text_is_envoys() -> None:
    config = _config(SIDECAR.format(mode="SIMPLE"))
    assert render_listeners(config.listeners) == (
        b"0.0.0.0_9081::0.0.0.0:9081\n127.0.0.1_9080::127.0.0.1:9080\n"
    )
