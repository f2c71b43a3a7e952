"""DestinationRule: host, client TLS and exportTo, with Istio's messages."""

from __future__ import annotations

from meshlet.resources.loader import decode_text
from meshlet.resources.validation import Finding, Level, validate

HEAD = (
    "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
    "metadata: {name: d, namespace: test}\nspec:\n"
)


def _findings(spec: str) -> list[Finding]:
    (resource,) = decode_text(HEAD + spec, "dr.yaml")
    return validate(resource)


def _messages(spec: str) -> list[str]:
    return [f.message for f in _findings(spec) if f.level is Level.ERROR]


def test_host_is_required() -> None:
    assert _messages("  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}\n") == [
        "empty domain name not allowed"
    ]


def test_mutual_needs_client_certificate_and_key() -> None:
    findings = _findings("  host: a.b\n  trafficPolicy:\n    tls: {mode: MUTUAL}\n")
    assert [f.message for f in findings] == [
        "client certificate required for mutual tls",
        "private key required for mutual tls",
    ]
    assert findings[0].path == ("spec", "trafficPolicy", "tls")


def test_credential_name_excludes_files_and_insecure_skip_verify_excludes_ca() -> None:
    assert _messages(
        "  host: a.b\n  trafficPolicy:\n"
        "    tls: {mode: SIMPLE, credentialName: c, caCertificates: /ca}\n"
    ) == ["cannot specify client certificates or CA certificate or CA CRL If credentialName is set"]
    assert _messages(
        "  host: a.b\n  trafficPolicy:\n    portLevelSettings:\n    - port: {number: 80}\n"
        "      tls: {mode: SIMPLE, insecureSkipVerify: true, subjectAltNames: []}\n"
    ) == [
        "cannot specify CaCertificates or CredentialName or SubjectAltNames when "
        "InsecureSkipVerify is set true"
    ]


def test_istio_mutual_alone_is_valid() -> None:
    assert (
        _findings(
            "  host: httpbin.test.svc.cluster.local\n  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}\n"
        )
        == []
    )


def test_traffic_policy_subsets_and_export_to() -> None:
    assert _messages("  host: a.b\n  trafficPolicy: {retryBudget: {percent: 5}}\n") == [
        "traffic policy must have at least one field"
    ]
    assert _messages("  host: a.b\n  subsets: [{name: v1}, {name: v1}, {name: V_2}]\n") == [
        "duplicate subset names: v1",
        "subset name is invalid: V_2",
    ]
    assert _messages("  host: a.b\n  exportTo: [test, '.', '*']\n") == [
        "duplicate entries in exportTo: . and current namespace test",
        "cannot have both public (*) and non-public exportTo values for a resource",
    ]
    assert _messages(
        "  host: a.b\n  workloadSelector: {matchLabels: {app: x}}\n  exportTo: [other]\n"
    ) == ["destination rule with workload selector cannot have exportTo beyond current namespace"]


def test_selector_without_labels_is_a_warning() -> None:
    (finding,) = _findings("  host: a.b\n  workloadSelector: {}\n")
    assert finding == Finding(
        Level.WARNING, "workload selector specified without labels", ("spec", "workloadSelector")
    )
