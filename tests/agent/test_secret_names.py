from __future__ import annotations

import pytest

from meshlet.agent.sds import to_envoy_secret
from meshlet.agent.secret import (
    FileCertificate,
    FileRoot,
    SecretItem,
    SecretKind,
    SecretSource,
    kind_of,
    parse_resource_name,
    source_of,
)


@pytest.mark.parametrize(
    ("name", "parsed"),
    [
        (
            "file-cert:/etc/istio/tls-certs/tls.crt~/etc/istio/tls-certs/tls.key",
            FileCertificate("/etc/istio/tls-certs/tls.crt", "/etc/istio/tls-certs/tls.key"),
        ),
        ("file-root:/etc/istio/tls-ca-certs/ca.crt", FileRoot("/etc/istio/tls-ca-certs/ca.crt")),
        ("file-cert:/a.crt", None),  # no "~"
        ("file-cert:/a~/b~/c", None),  # two "~"
        ("file-root:/a~/b", None),  # a "~" in a root name
        ("file-cert:~", FileCertificate("", "")),  # Istio's split accepts empty paths
        ("file-root:", FileRoot("")),
        ("default", None),
        ("ROOTCA", None),
        ("FILE-CERT:/a~/b", None),  # the prefix is case-sensitive
    ],
)
def test_parse_as_istio_does(name: str, parsed: object) -> None:
    assert parse_resource_name(name) == parsed
    if parsed is not None:
        assert parsed.resource_name == name  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("name", "source", "kind"),
    [
        ("default", SecretSource.WORKLOAD, SecretKind.TLS_CERTIFICATE),
        ("ROOTCA", SecretSource.ROOT, SecretKind.VALIDATION_CONTEXT),
        ("file-cert:/a~/b", SecretSource.FILE_CERT, SecretKind.TLS_CERTIFICATE),
        ("file-root:/ca", SecretSource.FILE_ROOT, SecretKind.VALIDATION_CONTEXT),
        ("file-cert:/a", SecretSource.WORKLOAD, SecretKind.TLS_CERTIFICATE),
        ("file-cert:/a~", SecretSource.WORKLOAD, SecretKind.TLS_CERTIFICATE),
        ("file-root:", SecretSource.WORKLOAD, SecretKind.VALIDATION_CONTEXT),
        ("my-credential", SecretSource.WORKLOAD, SecretKind.TLS_CERTIFICATE),
    ],
)
def test_source_and_kind(name: str, source: SecretSource, kind: SecretKind) -> None:
    assert source_of(name) is source
    assert kind_of(name) is kind


def test_item_repr_hides_the_key() -> None:
    item = SecretItem("default", certificate_chain=b"CHAIN", private_key=b"SECRET-KEY-BYTES")
    assert "SECRET-KEY-BYTES" not in repr(item)
    assert item.renamed("other").private_key == b"SECRET-KEY-BYTES"


def test_to_envoy_secret_follows_istio() -> None:
    cert = to_envoy_secret(SecretItem("file-cert:/a~/b", certificate_chain=b"C", private_key=b"K"))
    assert cert.name == "file-cert:/a~/b"
    assert cert.WhichOneof("type") == "tls_certificate"
    assert cert.tls_certificate.certificate_chain.inline_bytes == b"C"
    assert cert.tls_certificate.private_key.inline_bytes == b"K"
    for name in ("ROOTCA", "file-root:/ca.crt"):
        root = to_envoy_secret(SecretItem(name, trusted_ca=b"R"))
        assert root.WhichOneof("type") == "validation_context"
        assert root.validation_context.trusted_ca.inline_bytes == b"R"
