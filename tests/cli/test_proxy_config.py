"""``proxy-config``: istioctl's secret table (the scenario's, byte for byte), its JSON
with keys redacted, and the other tables, from config dumps recorded here."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from meshlet.ca.signing import KeyAlgorithm, SpiffeId, make_self_signed_root, sign_csr
from meshlet.istioctl import proxy_config as pc
from meshlet.istioctl.tabwriter import tabwrite
from tests.cli.certs import make_cert
from tests.cli.conftest import Run
from tests.cli.fake_cluster import FakeCluster
from tests.cli.scenario_objects import scenario_objects

POD = "httpbin-5bbdbd6588-z9vbs"
SECRET = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
FILE_CERT = "file-cert:/etc/istio/tls-certs/tls.crt~/etc/istio/tls-certs/tls.key"
FILE_ROOT = "file-root:/etc/istio/tls-ca-certs/ca.crt"


def _at(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _entry(name: str, chain: bytes | None = None, ca: bytes | None = None) -> dict[str, Any]:
    secret: dict[str, Any] = {"@type": SECRET, "name": name}
    if chain is not None:
        secret["tls_certificate"] = {
            "certificate_chain": {"inline_bytes": _b64(chain)},
            "private_key": {"inline_bytes": _b64(b"-----BEGIN PRIVATE KEY-----\nsecret\n")},
        }
    if ca is not None:
        secret["validation_context"] = {"trusted_ca": {"inline_bytes": _b64(ca)}}
    return {
        "name": name,
        "version_info": "2022-02-14T09:53:46Z",
        "last_updated": "2022-02-14T09:53:46.123Z",
        "secret": secret,
    }


def _dump(active: list[dict[str, Any]], warming: list[dict[str, Any]] | None = None) -> bytes:
    config: dict[str, Any] = {"@type": "type.googleapis.com/envoy.admin.v3.SecretsConfigDump"}
    if active:
        config["dynamic_active_secrets"] = active
    if warming:
        config["dynamic_warming_secrets"] = warming
    return json.dumps({"configs": [config]}).encode()


@pytest.fixture(scope="module")
def scenario_dump() -> bytes:
    """Certificates with the scenario's serials and times."""
    example_pem, _, example, example_key = make_cert(
        "example.com",
        serial=14033888812979945197,
        not_before=_at("2022-02-14T09:51:56Z"),
        not_after=_at("2023-02-14T09:51:56Z"),
    )
    server_pem, _, _, _ = make_cert(
        "httpbin.test.svc.cluster.local",
        serial=1,
        issuer=(example, example_key),
        not_before=_at("2022-02-14T09:51:56Z"),
        not_after=_at("2023-02-14T09:51:56Z"),
    )
    root_pem, _, root, root_key = make_cert(
        "cluster.local",
        serial=204427760222438623495455009380743891800,
        ca=True,
        not_before=_at("2022-02-09T16:58:00Z"),
        not_after=_at("2032-02-07T16:58:00Z"),
    )
    leaf_pem, _, _, _ = make_cert(
        "httpbin",
        serial=329492464719328863283539045344215802956,
        issuer=(root, root_key),
        not_before=_at("2022-02-14T09:53:46Z"),
        not_after=_at("2022-02-15T09:55:46Z"),
        uri="spiffe://cluster.local/ns/test/sa/httpbin",
    )
    return _dump(
        [
            _entry(FILE_CERT, chain=server_pem),
            _entry("default", chain=leaf_pem + root_pem),
            _entry("ROOTCA", ca=root_pem),
            _entry(FILE_ROOT, ca=example_pem),
        ]
    )


SCENARIO_TABLE = """\
RESOURCE NAME                                                           TYPE           STATUS     VALID CERT     SERIAL NUMBER                               NOT AFTER                NOT BEFORE
file-cert:/etc/istio/tls-certs/tls.crt~/etc/istio/tls-certs/tls.key     Cert Chain     ACTIVE     true           1                                           2023-02-14T09:51:56Z     2022-02-14T09:51:56Z
default                                                                 Cert Chain     ACTIVE     true           329492464719328863283539045344215802956     2022-02-15T09:55:46Z     2022-02-14T09:53:46Z
ROOTCA                                                                  CA             ACTIVE     true           204427760222438623495455009380743891800     2032-02-07T16:58:00Z     2022-02-09T16:58:00Z
file-root:/etc/istio/tls-ca-certs/ca.crt                                Cert Chain     ACTIVE     true           14033888812979945197                        2023-02-14T09:51:56Z     2022-02-14T09:51:56Z
"""


@pytest.fixture
def httpbin(cluster: FakeCluster) -> FakeCluster:
    for obj in scenario_objects():
        cluster.put(obj)
    return cluster


def test_scenario_secret_table(
    httpbin: FakeCluster, meshlet: Run, monkeypatch: pytest.MonkeyPatch, scenario_dump: bytes
) -> None:
    from meshlet.cli import _cluster

    monkeypatch.setattr(_cluster, "now", lambda: _at("2022-02-14T10:00:00Z"))
    httpbin.admin_answers["/config_dump"] = scenario_dump
    result = meshlet("proxy-config", "secret", f"{POD}.test")
    assert (result.code, result.err) == (0, "")
    assert result.out == SCENARIO_TABLE
    assert httpbin.sent("admin") == [{"namespace": "test", "pod": POD, "path": "/config_dump"}]


def test_valid_cert_follows_the_clock(scenario_dump: bytes) -> None:
    dump = pc.parse_json(scenario_dump)
    later = {row.name: row.valid for row in pc.secret_rows(dump, _at("2022-03-01T00:00:00Z"))}
    assert later == {FILE_CERT: True, "default": False, "ROOTCA": True, FILE_ROOT: True}


def test_meshlet_ca_secrets() -> None:
    """The mesh root and a workload certificate made by meshlet's own CA code."""
    now = datetime.now(UTC)
    root = make_self_signed_root("cluster.local", now=now, algorithm=KeyAlgorithm.ECDSA)
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .sign(
            key, __import__("cryptography.hazmat.primitives.hashes", fromlist=["SHA256"]).SHA256()
        )
    )
    chain = sign_csr(
        csr.public_bytes(serialization.Encoding.PEM),
        SpiffeId("cluster.local", "test", "httpbin"),
        root,
        now=now,
        ttl=timedelta(hours=24),
    )
    leaf = x509.load_pem_x509_certificate(chain[0].encode())
    dump = pc.parse_json(
        _dump(
            [_entry("default", chain="".join(chain).encode()), _entry("ROOTCA", ca=root.root_pem)],
            warming=[
                {
                    "name": "file-root:/x",
                    "version_info": "uninitialized",
                    "secret": {"@type": SECRET, "name": "file-root:/x"},
                }
            ],
        )
    )
    rows = pc.secret_rows(dump, now)
    assert [(r.name, r.status, r.type, r.valid) for r in rows] == [
        ("file-root:/x", "WARMING", "", False),
        ("default", "ACTIVE", "Cert Chain", True),
        ("ROOTCA", "ACTIVE", "CA", True),
    ]
    assert rows[1].serial == str(leaf.serial_number)
    assert rows[1].trust_domain == "cluster.local"
    assert rows[1].not_after == leaf.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    table = pc.render_secrets(dump, now)
    assert "TRUST DOMAIN" not in table  # not every secret has one
    assert table.splitlines()[1].startswith("file-root:/x     ")


def test_no_secrets(httpbin: FakeCluster, meshlet: Run) -> None:
    httpbin.admin_answers["/config_dump"] = _dump([])
    assert meshlet("-n", "test", "pc", "secret", POD).out == "No active or warming secrets found.\n"


def test_secret_json_is_camel_case_and_redacted(
    httpbin: FakeCluster, meshlet: Run, scenario_dump: bytes
) -> None:
    httpbin.admin_answers["/config_dump"] = scenario_dump
    out = meshlet("proxy-config", "secret", f"{POD}.test", "-o", "json").out
    assert out.startswith(
        '{\n    "dynamicActiveSecrets": [\n        {\n            "name": "file-cert:'
    )
    data = json.loads(out)
    first = data["dynamicActiveSecrets"][0]
    assert list(first) == ["name", "versionInfo", "lastUpdated", "secret"]
    assert first["secret"]["tlsCertificate"]["privateKey"] == {"inlineBytes": pc.REDACTED}
    assert base64.b64decode(pc.REDACTED) == b"[redacted]"
    assert "secret\\n" not in out and "PRIVATE KEY" not in out
    yaml_out = meshlet("proxy-config", "secret", f"{POD}.test", "-o", "yaml").out
    assert yaml_out.startswith("dynamicActiveSecrets:\n- lastUpdated:")


LISTENERS = {
    "configs": [
        {
            "@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
            "dynamic_listeners": [
                {
                    "name": "virtualInbound",
                    "active_state": {
                        "listener": {
                            "@type": "type.googleapis.com/envoy.config.listener.v3.Listener",
                            "name": "virtualInbound",
                            "address": {
                                "socket_address": {"address": "0.0.0.0", "port_value": 15006}
                            },
                            "filter_chains": [
                                {
                                    "name": "10.244.0.7_9080",
                                    "filter_chain_match": {
                                        "destination_port": 9080,
                                        "transport_protocol": "tls",
                                    },
                                    "filters": [
                                        {
                                            "name": "envoy.filters.network.http_connection_manager",
                                            "typed_config": {
                                                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                                                "stat_prefix": "inbound_0.0.0.0_9080",
                                                "rds": {"route_config_name": "inbound|9080||"},
                                            },
                                        }
                                    ],
                                },
                                {
                                    "filter_chain_match": {"destination_port": 9081},
                                    "filters": [
                                        {
                                            "name": "envoy.filters.network.tcp_proxy",
                                            "typed_config": {
                                                "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                                                "stat_prefix": "x",
                                                "cluster": "inbound|9081||",
                                            },
                                        }
                                    ],
                                },
                            ],
                        }
                    },
                }
            ],
        },
        {
            "@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
            "dynamic_active_clusters": [
                {
                    "cluster": {
                        "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
                        "name": "outbound|8080||httpbin.test.svc.cluster.local",
                        "type": "EDS",
                        "eds_cluster_config": {
                            "service_name": "outbound|8080||httpbin.test.svc.cluster.local"
                        },
                    }
                },
                {
                    "cluster": {
                        "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
                        "name": "inbound|9080||",
                        "type": "STATIC",
                    }
                },
            ],
            "static_clusters": [
                {
                    "cluster": {
                        "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
                        "name": "BlackHoleCluster",
                        "type": "STATIC",
                    }
                }
            ],
        },
        {
            "@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
            "dynamic_route_configs": [
                {
                    "route_config": {
                        "@type": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
                        "name": "inbound|9080||",
                        "virtual_hosts": [
                            {
                                "name": "inbound|http|9080",
                                "domains": ["*"],
                                "routes": [
                                    {
                                        "name": "default",
                                        "match": {"prefix": "/"},
                                        "route": {"cluster": "inbound|9080||"},
                                    }
                                ],
                            }
                        ],
                    }
                }
            ],
        },
    ]
}


def test_listener_cluster_route_tables(httpbin: FakeCluster, meshlet: Run) -> None:
    httpbin.admin_answers["/config_dump"] = json.dumps(LISTENERS).encode()
    listeners = meshlet("proxy-config", "listener", f"{POD}.test").out
    assert listeners == (
        "ADDRESSES PORT  MATCH                    DESTINATION\n"
        "0.0.0.0   15006 Trans: tls; Addr: *:9080 Route: inbound|9080||\n"
        "0.0.0.0   15006 Addr: *:9081             Cluster: inbound|9081||\n"
    )
    clusters = meshlet("proxy-config", "cluster", f"{POD}.test").out.splitlines()
    assert (
        clusters[0]
        == "SERVICE FQDN                       PORT     SUBSET     DIRECTION     TYPE       DESTINATION RULE"
    )
    assert [line.split() for line in clusters[1:]] == [
        ["9080", "-", "inbound", "STATIC"],
        ["BlackHoleCluster", "-", "-", "-", "STATIC"],
        ["httpbin.test.svc.cluster.local", "8080", "-", "outbound", "EDS"],
    ]
    routes = meshlet("proxy-config", "route", f"{POD}.test").out.splitlines()
    assert routes[1].split() == ["inbound|9080||", "inbound|http|9080", "*", "/*"]
    as_json = json.loads(meshlet("proxy-config", "listener", f"{POD}.test", "-o", "json").out)
    assert as_json[0]["filterChains"][0]["filterChainMatch"] == {
        "destinationPort": 9080,
        "transportProtocol": "tls",
    }


def test_endpoints(httpbin: FakeCluster, meshlet: Run) -> None:
    httpbin.admin_answers["/clusters?format=json"] = json.dumps(
        {
            "cluster_statuses": [
                {
                    "name": "outbound|8080||httpbin.test.svc.cluster.local",
                    "host_statuses": [
                        {
                            "address": {
                                "socket_address": {"address": "10.244.0.7", "port_value": 9081}
                            },
                            "health_status": {"eds_health_status": "HEALTHY"},
                        }
                    ],
                }
            ]
        }
    ).encode()
    assert meshlet("proxy-config", "endpoint", f"{POD}.test").out == (
        "ENDPOINT            STATUS      OUTLIER CHECK     CLUSTER\n"
        "10.244.0.7:9081     HEALTHY     OK                outbound|8080||httpbin.test.svc.cluster.local\n"
    )


def test_admin_answer_that_is_not_json(httpbin: FakeCluster, meshlet: Run) -> None:
    httpbin.admin_answers["/config_dump"] = b"<html>"
    result = meshlet("proxy-config", "secret", f"{POD}.test")
    assert result.code == 1
    assert result.err.startswith("error: error unmarshalling config dump response from Envoy:")


def test_tabwriter_blocks_align_independently() -> None:
    text = "a:\tx\nlonger label:\ty\nplain\nb:\tz\n"
    assert tabwrite(text, padding=2) == "a:             x\nlonger label:  y\nplain\nb:  z\n"
