"""``meshlet analyze`` on files: every message of Istio's Sidecar, TLS and
PeerAuthentication validation, word for word, with the file and line it names."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from meshlet.cli.main import main
from tests import manifests


@pytest.fixture(autouse=True)
def _no_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Files alone: a MESHLET_HOME where no cluster runs."""
    monkeypatch.setenv("MESHLET_HOME", str(tmp_path / "no-cluster"))


HEADER = """\
apiVersion: networking.istio.io/v1alpha3
kind: Sidecar
metadata:
  name: ingress-sidecar
  namespace: test
spec:
"""

SELECTOR = """\
  workloadSelector:
    labels:
      app: httpbin
"""


def sidecar(listener: str, *, selector: str = SELECTOR) -> str:
    """A Sidecar with one ingress listener written as YAML under ``- ``."""
    body = textwrap.indent(textwrap.dedent(listener).strip("\n"), "    ")
    return HEADER + selector + "  ingress:\n  -" + body[3:] + "\n"


def https(tls: str, *, protocol: str = "HTTPS", extra: str = "") -> str:
    tls_block = textwrap.indent(textwrap.dedent(tls).strip("\n"), "  ")
    listener = (
        f"port:\n  number: 9080\n  protocol: {protocol}\n  name: external\n"
        f"defaultEndpoint: 0.0.0.0:80\n{extra}tls:\n{tls_block}\n"
    )
    return sidecar(listener)


PEER_AUTHENTICATION = """\
apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata:
  name: pa
  namespace: test
spec:
"""

MUTUAL_FILES = """\
mode: MUTUAL
serverCertificate: /etc/istio/tls-certs/tls.crt
privateKey: /etc/istio/tls-certs/tls.key
caCertificates: /etc/istio/tls-ca-certs/ca.crt
"""

# (case id, document, level, code, text on the line the message names, message)
CASES: list[tuple[str, str, str, str, str, str]] = [
    # --- workload selector -------------------------------------------------------------
    (
        "selector-empty-key",
        sidecar(
            "port: {number: 9080, protocol: HTTP}",
            selector='  workloadSelector:\n    labels:\n      "": httpbin\n',
        ),
        "Error",
        "IST0106",
        '"": httpbin',
        'empty key is not supported in selector: "=httpbin"',
    ),
    (
        "selector-wildcard",
        sidecar(
            "port: {number: 9080, protocol: HTTP}",
            selector="  workloadSelector:\n    labels:\n      app: http*\n",
        ),
        "Error",
        "IST0106",
        "app: http*",
        'wildcard is not supported in selector: "app=http*"',
    ),
    (
        "selector-without-labels",
        sidecar("port: {number: 9080, protocol: HTTP}", selector="  workloadSelector: {}\n"),
        "Warning",
        "IST0133",
        "workloadSelector: {}",
        "sidecar: workload selector specified without labels, will be applied to all "
        "services in namespace",
    ),
    (
        "empty-configuration",
        HEADER + SELECTOR,
        "Error",
        "IST0106",
        "spec:",
        "sidecar: empty configuration provided",
    ),
    # --- ingress listeners ---------------------------------------------------------------
    (
        "ingress-null",
        HEADER + SELECTOR + "  ingress:\n  - null\n",
        "Error",
        "IST0106",
        "- null",
        "sidecar: ingress may not be null",
    ),
    (
        "port-required",
        sidecar("defaultEndpoint: 127.0.0.1:80"),
        "Error",
        "IST0106",
        "- defaultEndpoint",
        "sidecar: port is required for ingress listeners",
    ),
    (
        "target-port",
        sidecar(
            "port: {number: 9080, protocol: HTTP}\nbind: 10.1.2.3\n", selector=SELECTOR
        ).replace("{number: 9080, protocol: HTTP}", "\n      number: 9080\n      targetPort: 80"),
        "Error",
        "IST0106",
        "targetPort: 80",
        "targetPort has no impact on Sidecars",
    ),
    (
        "port-name",
        sidecar("port:\n  number: 9080\n  name: web_port\n"),
        "Error",
        "IST0106",
        "name: web_port",
        "invalid port name: web_port",
    ),
    (
        "protocol",
        sidecar("port:\n  number: 9080\n  protocol: HTTP3\n"),
        "Error",
        "IST0106",
        "protocol: HTTP3",
        "unsupported protocol: HTTP3",
    ),
    (
        "port-range",
        sidecar("port:\n  number: 70000\n"),
        "Error",
        "IST0106",
        "number: 70000",
        "port number 70000 must be in the range 1..65535",
    ),
    (
        "bind",
        sidecar("port: {number: 9080}\nbind: unix:///var/run/app.sock\n"),
        "Error",
        "IST0106",
        "bind: unix",
        "unix:///var/run/app.sock is not a valid IP",
    ),
    (
        "duplicate-port",
        HEADER + SELECTOR + "  ingress:\n  - port: {number: 9080}\n  - port:\n      number: 9080\n",
        "Error",
        "IST0106",
        "      number: 9080",
        "sidecar: ports on IP bound listeners must be unique",
    ),
    # --- defaultEndpoint -------------------------------------------------------------------
    (
        "unix-empty",
        sidecar("port: {number: 9080}\ndefaultEndpoint: unix://\n"),
        "Error",
        "IST0106",
        "defaultEndpoint: unix://",
        "unix address must not be empty",
    ),
    (
        "unix-relative",
        sidecar("port: {number: 9080}\ndefaultEndpoint: unix://var/app.sock\n"),
        "Error",
        "IST0106",
        "defaultEndpoint: unix://",
        "var/app.sock is not an absolute path to a file",
    ),
    (
        "unix-trailing-slash",
        sidecar("port: {number: 9080}\ndefaultEndpoint: unix:///var/run/\n"),
        "Error",
        "IST0106",
        "defaultEndpoint: unix://",
        "/var/run/ is not an absolute path to a file",
    ),
    (
        "split-host-port-missing-port",
        sidecar("port: {number: 9080}\ndefaultEndpoint: localhost\n"),
        "Error",
        "IST0106",
        "defaultEndpoint: localhost",
        "address localhost: missing port in address",
    ),
    (
        "split-host-port-empty-port-number",
        sidecar("port: {number: 9080}\ndefaultEndpoint: localhost\n"),
        "Error",
        "IST0106",
        "defaultEndpoint: localhost",
        'sidecar: defaultEndpoint port () is not a number: strconv.Atoi: parsing "": invalid syntax',
    ),
    (
        "split-host-port-too-many-colons",
        sidecar("port: {number: 9080}\ndefaultEndpoint: '::1:80'\n"),
        "Error",
        "IST0106",
        "defaultEndpoint: '::1:80'",
        "address ::1:80: too many colons in address",
    ),
    (
        "split-host-port-missing-bracket",
        sidecar("port: {number: 9080}\ndefaultEndpoint: '[::1:80'\n"),
        "Error",
        "IST0106",
        "defaultEndpoint: '[::1:80'",
        "address [::1:80: missing ']' in address",
    ),
    (
        "default-endpoint-host",
        sidecar("port: {number: 9080}\ndefaultEndpoint: 10.0.0.1:80\n"),
        "Error",
        "IST0106",
        "defaultEndpoint: 10.0.0.1:80",
        "sidecar: defaultEndpoint must be of form 127.0.0.1:<port>,0.0.0.0:<port>,"
        "[::1]:port,[::]:port,unix://filepath or unset",
    ),
    (
        "default-endpoint-port-not-a-number",
        sidecar("port: {number: 9080}\ndefaultEndpoint: 127.0.0.1:http\n"),
        "Error",
        "IST0106",
        "defaultEndpoint: 127.0.0.1:http",
        'sidecar: defaultEndpoint port (http) is not a number: strconv.Atoi: parsing "http": '
        "invalid syntax",
    ),
    (
        "default-endpoint-port-range",
        sidecar("port: {number: 9080}\ndefaultEndpoint: '[::1]:0'\n"),
        "Error",
        "IST0106",
        "defaultEndpoint: '[::1]:0'",
        "port number 0 must be in the range 1..65535",
    ),
    # --- ingress tls ---------------------------------------------------------------------------
    (
        "tls-subject-alt-names",
        https(MUTUAL_FILES + "subjectAltNames: [client.example.com]\n"),
        "Error",
        "IST0106",
        "subjectAltNames:",
        "sidecar: subjectAltNames is not supported in ingress tls",
    ),
    (
        "tls-https-redirect",
        https(MUTUAL_FILES + "httpsRedirect: true\n"),
        "Error",
        "IST0106",
        "httpsRedirect: true",
        "sidecar: httpsRedirect is not supported",
    ),
    (
        "tls-credential-name",
        https("mode: SIMPLE\ncredentialName: httpbin-credential\n"),
        "Error",
        "IST0106",
        "credentialName: httpbin",
        "sidecar: credentialName is not currently supported",
    ),
    (
        "tls-credential-names",
        https("mode: SIMPLE\ncredentialNames: [a, b]\n"),
        "Error",
        "IST0106",
        "credentialNames:",
        "sidecar: credentialNames is not currently supported",
    ),
    (
        "tls-certificates",
        https(
            "mode: SIMPLE\ntlsCertificates:\n- serverCertificate: /a.crt\n  privateKey: /a.key\n"
        ),
        "Error",
        "IST0106",
        "tlsCertificates:",
        "sidecar: tls_certificates is not currently supported",
    ),
    (
        "tls-mode-istio-mutual",
        https("mode: ISTIO_MUTUAL\n"),
        "Error",
        "IST0106",
        "mode: ISTIO_MUTUAL",
        "configuration is invalid: cannot set mode to ISTIO_MUTUAL in sidecar ingress tls",
    ),
    (
        "tls-mode-auto-passthrough",
        https("mode: AUTO_PASSTHROUGH\n"),
        "Error",
        "IST0106",
        "mode: AUTO_PASSTHROUGH",
        "configuration is invalid: cannot set mode to AUTO_PASSTHROUGH in sidecar ingress tls",
    ),
    (
        "tls-on-plain-port",
        https(MUTUAL_FILES, protocol="HTTP"),
        "Error",
        "IST0106",
        "  tls:",
        "server cannot have TLS settings for non HTTPS/TLS ports",
    ),
    (
        "connection-pool-http-on-tcp-port",
        https(MUTUAL_FILES, protocol="TLS", extra="connectionPool:\n  http:\n    maxRetries: 3\n"),
        "Warning",
        "IST0133",
        "    http:",
        'sidecar: HTTP connection pool settings are configured for port 9080 ("external") but '
        "its protocol is not HTTP (TLS); only TCP settings will apply",
    ),
    # --- validateTLSOptions ----------------------------------------------------------------------
    (
        "tls-old-version-without-ciphers",
        https(MUTUAL_FILES + "minProtocolVersion: TLSV1_1\n"),
        "Warning",
        "IST0133",
        "minProtocolVersion: TLSV1_1",
        "TLS version below TLSV1_2 require setting compatible ciphers as by default they no "
        "longer include compatible ciphers.",
    ),
    (
        "tls-invalid-ciphers",
        https(MUTUAL_FILES + "cipherSuites: [NOT-A-CIPHER, AES128-SHA, -AES256-SHA, ALL]\n"),
        "Warning",
        "IST0133",
        "cipherSuites:",
        "ignoring invalid cipher suites: [NOT-A-CIPHER]",
    ),
    (
        "tls-duplicate-ciphers",
        https(MUTUAL_FILES + "cipherSuites: [AES128-SHA, AES256-SHA, AES128-SHA]\n"),
        "Warning",
        "IST0133",
        "cipherSuites:",
        "ignoring duplicate cipher suites: [AES128-SHA]",
    ),
    (
        "istio-mutual-server-certificate",
        https("mode: ISTIO_MUTUAL\nserverCertificate: /a.crt\n"),
        "Error",
        "IST0106",
        "serverCertificate: /a.crt",
        "ISTIO_MUTUAL TLS cannot have associated server certificate",
    ),
    (
        "istio-mutual-private-key",
        https("mode: ISTIO_MUTUAL\nprivateKey: /a.key\n"),
        "Error",
        "IST0106",
        "privateKey: /a.key",
        "ISTIO_MUTUAL TLS cannot have associated private key",
    ),
    (
        "istio-mutual-ca",
        https("mode: ISTIO_MUTUAL\ncaCertificates: /ca.crt\n"),
        "Error",
        "IST0106",
        "caCertificates: /ca.crt",
        "ISTIO_MUTUAL TLS cannot have associated CA bundle",
    ),
    (
        "istio-mutual-tls-certificates",
        https("mode: ISTIO_MUTUAL\ntlsCertificates: [{serverCertificate: /a.crt}]\n"),
        "Error",
        "IST0106",
        "tlsCertificates:",
        "ISTIO_MUTUAL TLS cannot have associated tlsCertificates",
    ),
    (
        "istio-mutual-credential-name",
        https("mode: ISTIO_MUTUAL\ncredentialName: c\n"),
        "Error",
        "IST0106",
        "credentialName: c",
        "ISTIO_MUTUAL TLS cannot have associated credentialName",
    ),
    (
        "istio-mutual-credential-names",
        https("mode: ISTIO_MUTUAL\ncredentialNames: [c]\n"),
        "Error",
        "IST0106",
        "credentialNames: [c]",
        "ISTIO_MUTUAL TLS cannot have associated credentialNames",
    ),
    (
        "passthrough-with-certificates",
        https("serverCertificate: /a.crt\nprivateKey: /a.key\n"),
        "Warning",
        "IST0133",
        "  tls:",
        "PASSTHROUGH mode does not use certificates, they will be ignored",
    ),
    (
        "several-certificate-sources",
        https("mode: SIMPLE\nserverCertificate: /a.crt\nprivateKey: /a.key\ncredentialName: c\n"),
        "Error",
        "IST0106",
        "  tls:",
        "only one of credential_name, credential_names, server_certificate/private_key, "
        "tls_certificates should be specified",
    ),
    (
        "mutual-without-ca",
        https("mode: MUTUAL\nserverCertificate: /a.crt\nprivateKey: /a.key\n"),
        "Error",
        "IST0106",
        "  tls:",
        "MUTUAL TLS requires a client CA bundle",
    ),
    (
        "optional-mutual-without-ca",
        https("mode: OPTIONAL_MUTUAL\nserverCertificate: /a.crt\nprivateKey: /a.key\n"),
        "Error",
        "IST0106",
        "  tls:",
        "MUTUAL TLS requires a client CA bundle",
    ),
    (
        "more-than-two-certificates",
        https(
            "mode: SIMPLE\ntlsCertificates:\n"
            "- {serverCertificate: /a.crt, privateKey: /a.key}\n"
            "- {serverCertificate: /b.crt, privateKey: /b.key}\n"
            "- {serverCertificate: /c.crt, privateKey: /c.key}\n"
        ),
        "Warning",
        "IST0133",
        "  tls:",
        "SIMPLE TLS can support up to 2 server certificates",
    ),
    (
        "simple-without-certificate",
        https("mode: SIMPLE\nprivateKey: /a.key\n"),
        "Error",
        "IST0106",
        "  tls:",
        "SIMPLE TLS requires a server certificate",
    ),
    (
        "mutual-without-key",
        https("mode: MUTUAL\nserverCertificate: /a.crt\ncaCertificates: /ca.crt\n"),
        "Error",
        "IST0106",
        "  tls:",
        "MUTUAL TLS requires a private key",
    ),
    (
        "tls-certificate-entry-without-key",
        https("mode: SIMPLE\ntlsCertificates:\n- serverCertificate: /a.crt\n"),
        "Error",
        "IST0106",
        "- serverCertificate: /a.crt",
        "SIMPLE TLS requires a private key",
    ),
    (
        "crl-with-credential-name",
        https("credentialName: c\ncaCrl: /crl.pem\n"),  # SIMPLE/MUTUAL return before this
        "Error",
        "IST0106",
        "caCrl: /crl.pem",
        "CRL is not supported with credentialName. CRL has to be specified in the credential",
    ),
    (
        "crl-with-simple",
        https("mode: SIMPLE\nserverCertificate: /a.crt\nprivateKey: /a.key\ncaCrl: /crl.pem\n"),
        "Error",
        "IST0106",
        "caCrl: /crl.pem",
        "CRL is not supported with SIMPLE TLS",
    ),
    # --- the CRD's CEL rules on ServerTLSSettings --------------------------------------------
    (
        "cel-credential-names-and-tls-certificates",
        https(
            "mode: SIMPLE\ncredentialNames: [a]\ntlsCertificates: [{serverCertificate: /a, privateKey: /k}]\n"
        ),
        "Error",
        "IST0106",
        "  tls:",
        "spec.ingress[0].tls: Invalid value: only one of credentialNames or tlsCertificates "
        "can be set",
    ),
    (
        "cel-credential-name-and-credential-names",
        https("mode: SIMPLE\ncredentialName: a\ncredentialNames: [b]\n"),
        "Error",
        "IST0106",
        "  tls:",
        "spec.ingress[0].tls: Invalid value: only one of credentialName or credentialNames "
        "can be set",
    ),
    (
        "cel-third-rule-as-written",
        https(
            "mode: SIMPLE\ncredentialNames: [a]\ntlsCertificates: [{serverCertificate: /a, privateKey: /k}]\n"
        ),
        "Error",
        "IST0106",
        "  tls:",
        "spec.ingress[0].tls: Invalid value: only one of credentialName or tlsCertificates "
        "can be set",
    ),
    # --- PeerAuthentication ---------------------------------------------------------------------
    (
        "pa-port-level-without-selector",
        PEER_AUTHENTICATION
        + "  mtls: {mode: STRICT}\n  portLevelMtls:\n    9080: {mode: DISABLE}\n",
        "Error",
        "IST0106",
        "  portLevelMtls:",
        "mesh/namespace peer authentication cannot have port level mTLS",
    ),
    (
        "pa-cel-port-level-requires-selector",
        PEER_AUTHENTICATION
        + "  mtls: {mode: STRICT}\n  portLevelMtls:\n    9080: {mode: DISABLE}\n",
        "Error",
        "IST0106",
        "spec:",
        "spec: Invalid value: portLevelMtls requires selector",
    ),
    (
        "pa-empty-port-level",
        PEER_AUTHENTICATION + "  selector:\n    matchLabels: {app: httpbin}\n  portLevelMtls: {}\n",
        "Error",
        "IST0106",
        "  portLevelMtls: {}",
        "port level mTLS, if defined, must have at least one element",
    ),
    (
        "pa-port-range",
        PEER_AUTHENTICATION
        + "  selector:\n    matchLabels: {app: httpbin}\n  portLevelMtls:\n    65536: {mode: DISABLE}\n",
        "Error",
        "IST0106",
        "65536:",
        "port must be in range 1..65535",
    ),
    (
        "pa-port-not-a-number",
        PEER_AUTHENTICATION
        + "  selector:\n    matchLabels: {app: httpbin}\n  portLevelMtls:\n    http: {mode: DISABLE}\n",
        "Error",
        "IST0106",
        "http:",
        "port must be in range 1..65535",
    ),
    (
        "pa-cel-port-range",
        PEER_AUTHENTICATION
        + "  selector:\n    matchLabels: {app: httpbin}\n  portLevelMtls:\n    0: {mode: DISABLE}\n",
        "Error",
        "IST0106",
        "  portLevelMtls:",
        "spec.portLevelMtls: Invalid value: port must be between 1-65535",
    ),
    (
        "pa-selector-empty-key",
        PEER_AUTHENTICATION + '  selector:\n    matchLabels:\n      "": httpbin\n',
        "Error",
        "IST0106",
        '"": httpbin',
        'empty key is not supported in selector: "=httpbin"',
    ),
    (
        "pa-selector-wildcard",
        PEER_AUTHENTICATION + "  selector:\n    matchLabels:\n      app: '*'\n",
        "Error",
        "IST0106",
        "app: '*'",
        'wildcard is not supported in selector: "app=*"',
    ),
    (
        "pa-cel-label-value-wildcard",
        PEER_AUTHENTICATION + "  selector:\n    matchLabels:\n      app: '*'\n",
        "Error",
        "IST0106",
        "app: '*'",
        "spec.selector.matchLabels.app: Invalid value: wildcard not allowed in label value match",
    ),
    (
        "pa-cel-label-key-wildcard",
        PEER_AUTHENTICATION + "  selector:\n    matchLabels:\n      'a*': b\n",
        "Error",
        "IST0106",
        "    matchLabels:",
        "spec.selector.matchLabels: Invalid value: wildcard not allowed in label key match",
    ),
    (
        "pa-cel-label-key-empty",
        PEER_AUTHENTICATION + '  selector:\n    matchLabels:\n      "": b\n',
        "Error",
        "IST0106",
        "    matchLabels:",
        "spec.selector.matchLabels: Invalid value: key must not be empty",
    ),
    (
        "pa-selector-without-labels",
        PEER_AUTHENTICATION + "  selector:\n    matchLabels: {}\n  mtls: {mode: STRICT}\n",
        "Warning",
        "IST0133",
        "  selector:",
        "workload selector specified without labels",
    ),
]


def _line_of(text: str, needle: str) -> int:
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in the document")


def _run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], document: str
) -> tuple[int, str, list[str], str]:
    path = tmp_path / "config.yaml"
    path.write_text(document, encoding="utf-8")
    code = main(["analyze", "-f", str(path)])
    captured = capsys.readouterr()
    return code, str(path), captured.out.splitlines(), captured.err


@pytest.mark.parametrize("case", [pytest.param(case, id=case[0]) for case in CASES])
def test_each_istio_message_is_reported_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: tuple[str, ...]
) -> None:
    _, document, level, code, needle, message = case
    exit_code, path, lines, err = _run(tmp_path, capsys, document)
    ref = (
        "PeerAuthentication test/pa"
        if "PeerAuthentication" in document
        else ("Sidecar test/ingress-sidecar")
    )
    kind_word = "error" if level == "Error" else "warning"
    expected = (
        f"{level} [{code}] ({ref} {path}:{_line_of(document, needle)}) "
        f"Schema validation {kind_word}: {message}"
    )
    assert expected in lines, "\n".join(lines)
    has_error = any(line.startswith("Error ") for line in lines)
    assert exit_code == (1 if has_error else 0)
    assert ("Error: Analyzers found issues" in err) == has_error


def test_the_scenario_manifests_have_no_error(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "analyze",
            "-n",
            "test",
            "--set",
            "values.pilot.env.ENABLE_TLS_ON_SIDECAR_INGRESS=true",
            "-f",
            str(manifests.EXAMPLE),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert out == "\u2714 No validation issues found when analyzing namespace: test.\n"


def test_warnings_alone_exit_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    document = https(MUTUAL_FILES + "cipherSuites: [NOT-A-CIPHER]\n")
    code, path, lines, err = _run(tmp_path, capsys, document)
    assert code == 0
    assert err == ""
    assert (
        f"Warning [IST0133] (Sidecar test/ingress-sidecar {path}:{_line_of(document, 'cipher')}) "
        "Schema validation warning: ignoring invalid cipher suites: [NOT-A-CIPHER]"
    ) in lines
    assert all(line.startswith("Warning ") for line in lines)


def test_messages_are_sorted_errors_first_and_deduplicated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = https("mode: ISTIO_MUTUAL\ncipherSuites: [BAD]\n", protocol="TCP")
    code, _, lines, _ = _run(tmp_path, capsys, document)
    assert code == 1
    levels = [line.split(" ", 1)[0] for line in lines]
    assert levels == sorted(levels, key=lambda level: level != "Error")
    assert len(lines) == len(set(lines))


def test_a_load_error_is_an_ist0106_message_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = sidecar("port: {number: 9080}\ndefaultEndpont: 127.0.0.1:80\n")
    code, path, lines, _ = _run(tmp_path, capsys, document)
    assert code == 1
    assert lines == [
        f"Error [IST0106] (Sidecar test/ingress-sidecar {path}:{_line_of(document, 'defaultEndpont')}) "
        'Schema validation error: unknown field "spec.ingress[0].defaultEndpont"'
    ]


def test_namespace_flag_places_objects_without_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = HEADER.replace("  namespace: test\n", "") + SELECTOR + "  ingress:\n  - null\n"
    path = tmp_path / "s.yaml"
    path.write_text(document, encoding="utf-8")
    assert main(["analyze", "-n", "shop", "-f", str(path)]) == 1
    captured = capsys.readouterr()
    assert f"(Sidecar shop/ingress-sidecar {path}:10)" in captured.out
    assert "when analyzing namespace: shop." in captured.err
