"""TLS settings: Istio's ``validateTLSOptions`` (server side) and ``ValidateTLS``
(client side, DestinationRule), and the CEL rules of ``ServerTLSSettings``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from meshlet.resources.istio import (
    ClientTLSMode,
    ClientTLSSettings,
    ServerTLSSettings,
    TLSMode,
    TLSProtocol,
)
from meshlet.resources.istio import TLSCertificate as _Cert
from meshlet.resources.validation._go import go_string_list
from meshlet.resources.validation.findings import Finding, cel_error, error, warning
from meshlet.resources.yamlsource import Path

__all__ = [
    "VALID_CIPHER_SUITES",
    "is_valid_cipher_suite",
    "server_tls_cel",
    "validate_client_tls",
    "validate_tls_options",
]

# The cipher suites Envoy (BoringSSL) accepts by name (Istio's ValidCipherSuites).
VALID_CIPHER_SUITES: frozenset[str] = frozenset(
    {
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
        "ECDHE-ECDSA-AES128-SHA",
        "ECDHE-RSA-AES128-SHA",
        "ECDHE-ECDSA-AES256-SHA",
        "ECDHE-RSA-AES256-SHA",
        "AES128-GCM-SHA256",
        "AES256-GCM-SHA384",
        "AES128-SHA",
        "AES256-SHA",
        "DES-CBC3-SHA",
    }
)


def is_valid_cipher_suite(name: str) -> bool:
    """A known suite, ``""``/``ALL``, or an expression starting with ``-``, ``+``, ``!`` …"""
    if name in {"", "ALL"}:
        return True
    if not name[0].isalnum():
        return True
    return name in VALID_CIPHER_SUITES


def validate_tls_options(tls: ServerTLSSettings, path: Path) -> list[Finding]:
    """Istio's ``validateTLSOptions`` on the ``ServerTLSSettings`` at ``path``."""
    findings: list[Finding] = []
    old_versions = {TLSProtocol.TLSV1_0, TLSProtocol.TLSV1_1}
    if tls.min_protocol_version in old_versions and not tls.cipher_suites:
        findings.append(
            warning(
                "TLS version below TLSV1_2 require setting compatible ciphers as by "
                "default they no longer include compatible ciphers.",
                (*path, "minProtocolVersion"),
            )
        )
    invalid: set[str] = set()
    seen: set[str] = set()
    duplicate: set[str] = set()
    for suite in tls.cipher_suites:
        if not is_valid_cipher_suite(suite):
            invalid.add(suite)
        elif suite in seen:
            duplicate.add(suite)
        else:
            seen.add(suite)
    ciphers = (*path, "cipherSuites")
    if invalid:
        listed = go_string_list(sorted(invalid))
        findings.append(warning(f"ignoring invalid cipher suites: {listed}", ciphers))
    if duplicate:
        listed = go_string_list(sorted(duplicate))
        findings.append(warning(f"ignoring duplicate cipher suites: {listed}", ciphers))

    if tls.mode is TLSMode.ISTIO_MUTUAL:
        for present, what, field in (
            (tls.server_certificate, "server certificate", "serverCertificate"),
            (tls.private_key, "private key", "privateKey"),
            (tls.ca_certificates, "CA bundle", "caCertificates"),
            (tls.tls_certificates, "tlsCertificates", "tlsCertificates"),
            (tls.credential_name, "credentialName", "credentialName"),
            (tls.credential_names, "credentialNames", "credentialNames"),
        ):
            if present:
                findings.append(
                    error(f"ISTIO_MUTUAL TLS cannot have associated {what}", (*path, field))
                )
        return findings

    if tls.mode in {TLSMode.PASSTHROUGH, TLSMode.AUTO_PASSTHROUGH} and (
        tls.ca_crl
        or tls.server_certificate
        or tls.private_key
        or tls.ca_certificates
        or tls.tls_certificates
        or tls.credential_name
        or tls.credential_names
    ):
        findings.append(
            warning(f"{tls.mode.value} mode does not use certificates, they will be ignored", path)
        )

    sources = sum(
        (
            bool(tls.server_certificate and tls.private_key),
            bool(tls.credential_name),
            bool(tls.credential_names),
            bool(tls.tls_certificates),
        )
    )
    if sources > 1:
        findings.append(
            error(
                "only one of credential_name, credential_names, server_certificate/private_key, "
                "tls_certificates should be specified",
                path,
            )
        )

    terminating = tls.mode in {TLSMode.SIMPLE, TLSMode.MUTUAL, TLSMode.OPTIONAL_MUTUAL}
    if terminating and (tls.credential_name or tls.credential_names):
        return findings  # the certificates come from the credential

    if terminating:
        prefix = "SIMPLE TLS"
        if tls.mode in {TLSMode.MUTUAL, TLSMode.OPTIONAL_MUTUAL}:
            prefix = "MUTUAL TLS"
            if not tls.ca_certificates:
                findings.append(error(f"{prefix} requires a client CA bundle", path))
        if len(tls.tls_certificates) > 2:
            findings.append(warning(f"{prefix} can support up to 2 server certificates", path))
        certificates: list[tuple[_Cert, Path]]
        if tls.tls_certificates:
            certificates = [
                (cert, (*path, "tlsCertificates", index))
                for index, cert in enumerate(tls.tls_certificates)
            ]
        else:
            single = _Cert(tls.server_certificate, tls.private_key)
            certificates = [(single, path)]
        for cert, where in certificates:
            if not cert.server_certificate:
                findings.append(error(f"{prefix} requires a server certificate", where))
            if not cert.private_key:
                findings.append(error(f"{prefix} requires a private key", where))

    if tls.ca_crl:
        if tls.credential_name:
            findings.append(
                error(
                    "CRL is not supported with credentialName. CRL has to be specified in "
                    "the credential",
                    (*path, "caCrl"),
                )
            )
        if tls.mode is TLSMode.SIMPLE:
            findings.append(error("CRL is not supported with SIMPLE TLS", (*path, "caCrl")))
    return findings


def server_tls_cel(raw: Mapping[str, Any], path: Path) -> list[Finding]:
    """The CEL rules of ``ServerTLSSettings`` in the Sidecar CRD, as written there.

    The third rule's expression counts ``credentialNames`` and ``tlsCertificates``
    (not ``credentialName``), so it fails together with the first one.
    """

    def has(field: str) -> int:
        return 1 if raw.get(field) is not None else 0

    findings: list[Finding] = []
    if has("tlsCertificates") + has("credentialNames") > 1:
        findings.append(
            cel_error("only one of credentialNames or tlsCertificates can be set", path)
        )
    if has("credentialName") + has("credentialNames") > 1:
        findings.append(cel_error("only one of credentialName or credentialNames can be set", path))
    if has("credentialNames") + has("tlsCertificates") > 1:
        findings.append(cel_error("only one of credentialName or tlsCertificates can be set", path))
    return findings


def validate_client_tls(
    tls: ClientTLSSettings, raw: Mapping[str, Any], namespace: str, path: Path
) -> list[Finding]:
    """Istio's ``ValidateTLS`` on a DestinationRule's ``ClientTLSSettings``.

    ``raw`` is the block as written: Istio tells an empty ``subjectAltNames`` list
    from an absent one here. (``configmap://`` credential names are not checked:
    meshlet serves no ConfigMap credentials.)
    """
    del namespace
    findings: list[Finding] = []
    sans_set = raw.get("subjectAltNames") is not None
    if tls.insecure_skip_verify:
        if tls.mode is ClientTLSMode.SIMPLE and (
            tls.ca_certificates or tls.credential_name or sans_set
        ):
            findings.append(
                error(
                    "cannot specify CaCertificates or CredentialName or SubjectAltNames when "
                    "InsecureSkipVerify is set true",
                    (*path, "insecureSkipVerify"),
                )
            )
        if tls.mode is ClientTLSMode.MUTUAL and (tls.ca_certificates or sans_set):
            findings.append(
                error(
                    "cannot specify CaCertificates or SubjectAltNames when InsecureSkipVerify "
                    "is set true",
                    (*path, "insecureSkipVerify"),
                )
            )
    if tls.mode in {ClientTLSMode.SIMPLE, ClientTLSMode.MUTUAL} and tls.credential_name:
        if tls.client_certificate or tls.ca_certificates or tls.private_key or tls.ca_crl:
            findings.append(
                error(
                    "cannot specify client certificates or CA certificate or CA CRL If "
                    "credentialName is set",
                    (*path, "credentialName"),
                )
            )
        return findings
    if tls.mode is ClientTLSMode.MUTUAL:
        if not tls.client_certificate:
            findings.append(error("client certificate required for mutual tls", path))
        if not tls.private_key:
            findings.append(error("private key required for mutual tls", path))
    return findings
