"""The typed Istio models read a checked body as Istio's protobuf decoding does."""

from __future__ import annotations

import pytest

from meshlet.errors import ConfigError
from meshlet.resources.istio import (
    CaptureMode,
    ClientTLSMode,
    ClientTLSSettings,
    DestinationRule,
    IstioIngressListener,
    MTLSMode,
    PeerAuthentication,
    ServerTLSSettings,
    Sidecar,
    SidecarPort,
    TLSMode,
    TLSProtocol,
)
from meshlet.resources.loader import decode_text
from meshlet.resources.objects import Resource


def _one(text: str) -> Resource:
    (resource,) = decode_text(text, "f.yaml")
    return resource


SCENARIO_SIDECAR = """\
apiVersion: networking.istio.io/v1alpha3
kind: Sidecar
metadata:
  name: ingress-sidecar
  namespace: test
  creationTimestamp: "2024-01-02T03:04:05Z"
spec:
  workloadSelector:
    labels: {app: httpbin, version: v1}
  ingress:
  - port: {number: 9080, protocol: HTTPS, name: external}
    defaultEndpoint: 0.0.0.0:80
    tls:
      mode: MUTUAL
      privateKey: /etc/istio/tls-certs/tls.key
      serverCertificate: /etc/istio/tls-certs/tls.crt
      caCertificates: /etc/istio/tls-ca-certs/ca.crt
  - port: {number: 9081, protocol: HTTP, name: internal}
    defaultEndpoint: 0.0.0.0:80
    captureMode: NONE
  - null
"""


def test_sidecar_of_the_scenario() -> None:
    sidecar = Sidecar.from_resource(_one(SCENARIO_SIDECAR))
    assert sidecar.name == "ingress-sidecar"
    assert sidecar.namespace == "test"
    assert sidecar.creation_timestamp == "2024-01-02T03:04:05Z"
    assert sidecar.workload_selector == {"app": "httpbin", "version": "v1"}
    assert sidecar.egress == ()
    assert sidecar.outbound_traffic_policy is None
    first, second, third = sidecar.ingress
    assert first == IstioIngressListener(
        port=SidecarPort(9080, "HTTPS", "external", 0),
        bind="",
        capture_mode=CaptureMode.DEFAULT,
        default_endpoint="0.0.0.0:80",
        tls=ServerTLSSettings(
            mode=TLSMode.MUTUAL,
            server_certificate="/etc/istio/tls-certs/tls.crt",
            private_key="/etc/istio/tls-certs/tls.key",
            ca_certificates="/etc/istio/tls-ca-certs/ca.crt",
        ),
    )
    assert first.tls is not None
    assert first.tls.min_protocol_version is TLSProtocol.TLS_AUTO
    assert first.tls.insecure_skip_verify is None
    assert second is not None and second.tls is None
    assert second.capture_mode is CaptureMode.NONE
    assert third is None


def test_sidecar_selector_absent_versus_empty() -> None:
    base = "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: s}\nspec:\n"
    absent = Sidecar.from_resource(_one(base + "  egress: [{hosts: ['./*']}]\n"))
    empty = Sidecar.from_resource(_one(base + "  workloadSelector: {}\n"))
    assert absent.workload_selector is None
    assert empty.workload_selector == {}
    assert absent.namespace == "default"
    assert absent.egress[0] is not None and absent.egress[0].hosts == ("./*",)


def test_peer_authentication_levels_and_ports() -> None:
    pa = PeerAuthentication.from_resource(
        _one(
            "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"
            "metadata: {name: p, namespace: test}\n"
            "spec:\n  selector: {matchLabels: {app: httpbin}}\n  mtls: {}\n"
            "  portLevelMtls:\n    9080: {mode: DISABLE}\n    '8080': {mode: STRICT}\n"
        )
    )
    assert pa.selector == {"app": "httpbin"}
    assert pa.mtls_mode is MTLSMode.UNSET
    assert pa.port_level_mtls == {8080: MTLSMode.STRICT, 9080: MTLSMode.DISABLE}
    assert list(pa.port_level_mtls) == [8080, 9080]

    mesh = PeerAuthentication.from_resource(
        _one(
            "apiVersion: security.istio.io/v1beta1\nkind: PeerAuthentication\n"
            "metadata: {name: default, namespace: istio-system}\nspec: {}\n"
        )
    )
    assert mesh.selector is None and mesh.mtls_mode is None and mesh.port_level_mtls == {}


def test_peer_authentication_bad_port_key_is_a_config_error_with_its_line() -> None:
    resource = _one(
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: p}\n"
        "spec:\n  selector: {matchLabels: {app: a}}\n  portLevelMtls:\n    http: {mode: DISABLE}\n"
    )
    with pytest.raises(ConfigError) as caught:
        PeerAuthentication.from_resource(resource)
    assert caught.value.location is not None and caught.value.location.line == 7
    assert caught.value.field == "spec.portLevelMtls.http"


def test_destination_rule_tls() -> None:
    rule = DestinationRule.from_resource(
        _one(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
            "metadata: {name: d, namespace: test}\n"
            "spec:\n  host: httpbin.test.svc.cluster.local\n  exportTo: ['.']\n"
            "  workloadSelector: {matchLabels: {app: sleep}}\n"
            "  trafficPolicy:\n    tls: {mode: ISTIO_MUTUAL, sni: a.b}\n"
            "    portLevelSettings:\n    - port: {number: 9080}\n"
            "      tls: {mode: SIMPLE, caCertificates: /ca.crt, insecureSkipVerify: false}\n"
        )
    )
    assert rule.host == "httpbin.test.svc.cluster.local"
    assert rule.tls == ClientTLSSettings(mode=ClientTLSMode.ISTIO_MUTUAL, sni="a.b")
    assert rule.port_level_tls == {
        9080: ClientTLSSettings(
            mode=ClientTLSMode.SIMPLE, ca_certificates="/ca.crt", insecure_skip_verify=False
        )
    }
    assert rule.workload_selector == {"app": "sleep"}
    assert rule.export_to == (".",)


def test_enum_values_are_istio_names() -> None:
    assert [m.value for m in TLSMode] == [
        "PASSTHROUGH",
        "SIMPLE",
        "MUTUAL",
        "AUTO_PASSTHROUGH",
        "ISTIO_MUTUAL",
        "OPTIONAL_MUTUAL",
    ]
    assert [m.value for m in MTLSMode] == ["UNSET", "DISABLE", "PERMISSIVE", "STRICT"]
    assert [m.value for m in ClientTLSMode] == ["DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL"]
