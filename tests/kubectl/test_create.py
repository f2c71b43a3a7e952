"""create namespace|secret: kubectl's objects, checks and --dry-run=client -o yaml."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from meshlet.kubectl.create import (
    namespace_object,
    parse_file_source,
    parse_literal_source,
    secret_generic,
    secret_tls,
)
from meshlet.kubectl.encode import to_yaml
from meshlet.kubectl.messages import KubectlError
from meshlet.resources.loader import decode_text
from tests.kubectl.conftest import recorded


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_create_secret_tls_dry_run_yaml(tls_pairs: dict[str, bytes]) -> None:
    cert, key = tls_pairs["rsa.crt"], tls_pairs["rsa.key"]
    obj = secret_tls("httpbin-mtls-termination", namespace="test", cert=cert, key=key)
    assert to_yaml(obj) == (
        "apiVersion: v1\n"
        "data:\n"
        f"  tls.crt: {b64(cert)}\n"
        f"  tls.key: {b64(key)}\n"
        "kind: Secret\n"
        "metadata:\n"
        "  name: httpbin-mtls-termination\n"
        "  namespace: test\n"
        "type: kubernetes.io/tls\n"
    )


def test_dry_run_output_applies_through_meshlets_loader(tls_pairs: dict[str, bytes]) -> None:
    """`create secret tls … --dry-run=client -o yaml | meshlet apply -f -` round-trips."""
    obj = secret_tls("renewed", namespace="test", cert=tls_pairs["ec.crt"], key=tls_pairs["ec.key"])
    (resource,) = decode_text(to_yaml(obj), "-")
    assert resource.kind == "Secret"
    assert resource.namespace == "test"
    assert resource.body == obj
    generic = secret_generic("cacert", files=[("ca.crt", tls_pairs["rsa.crt"])])
    (loaded,) = decode_text(to_yaml(generic), "-")
    assert base64.b64decode(loaded.body["data"]["ca.crt"]) == tls_pairs["rsa.crt"]
    (ns,) = decode_text(to_yaml(namespace_object("test")), "-")
    assert ns.kind == "Namespace" and ns.name == "test"


def test_same_data_as_kubectl_stored(api_schemas: Path) -> None:
    """The recorded Secrets were made by kubectl create; rebuilt here, the data is the same."""
    items = {
        i["metadata"]["name"]: i for i in recorded(api_schemas, "list-secrets-test.json")["items"]
    }
    recorded_tls = items["httpbin-mtls-termination"]
    cert = base64.b64decode(recorded_tls["data"]["tls.crt"])
    key = base64.b64decode(recorded_tls["data"]["tls.key"])
    rebuilt = secret_tls("httpbin-mtls-termination", namespace="test", cert=cert, key=key)
    assert rebuilt["data"] == recorded_tls["data"]
    assert rebuilt["type"] == recorded_tls["type"]
    recorded_ca = items["httpbin-mtls-termination-cacert"]
    ca = base64.b64decode(recorded_ca["data"]["ca.crt"])
    key_name, _ = parse_file_source("ca.crt=./example.com.crt")
    rebuilt_ca = secret_generic(
        "httpbin-mtls-termination-cacert", namespace="test", files=[(key_name, ca)]
    )
    assert rebuilt_ca["data"] == recorded_ca["data"]


def test_namespace_dry_run_yaml() -> None:
    assert to_yaml(namespace_object("test")) == (
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: test\nspec: {}\nstatus: {}\n"
    )


def test_generic_secret_literals_then_files() -> None:
    obj = secret_generic(
        "s",
        literals=["user=admin", "pass=a=b"],
        files=[("z.txt", b"\x00\xff")],
        secret_type="Opaque",
    )
    assert obj == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s"},
        "data": {"pass": b64(b"a=b"), "user": b64(b"admin"), "z.txt": b64(b"\x00\xff")},
        "type": "Opaque",
    }
    assert "type" not in secret_generic("s", literals=["a=b"])  # kubectl leaves it to the server
    assert "data" not in secret_generic("empty")


@pytest.mark.parametrize(
    ("source", "parsed"),
    [
        ("./certs/example.com.crt", ("example.com.crt", "./certs/example.com.crt")),
        ("ca.crt=./example.com.crt", ("ca.crt", "./example.com.crt")),
    ],
)
def test_file_sources(source: str, parsed: tuple[str, str]) -> None:
    assert parse_file_source(source) == parsed


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: parse_file_source("=path"), "key name for file path path missing"),
        (lambda: parse_file_source("key="), "file path for key name key missing"),
        (lambda: parse_file_source("a=b=c"), "key names or file paths cannot contain '='"),
        (
            lambda: parse_literal_source("novalue"),
            "invalid literal source novalue, expected key=value",
        ),
        (lambda: parse_literal_source("=v"), "invalid literal source =v, expected key=value"),
        (
            lambda: secret_generic("s", literals=["a=1", "a=2"]),
            "cannot add key a, another key by that name already exists",
        ),
        (
            lambda: secret_generic("s", literals=["bad/key=1"]),
            '"bad/key" is not valid key name for a Secret a valid config key must consist of '
            "alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or "
            "'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
        ),
        (
            lambda: secret_generic("s", literals=["..x=1"]),
            "\"..x\" is not valid key name for a Secret must not start with '..'",
        ),
        (lambda: secret_generic("", literals=["a=1"]), "name must be specified"),
    ],
)
def test_source_errors(call: object, message: str) -> None:
    with pytest.raises(KubectlError) as caught:
        call()  # type: ignore[operator]
    assert caught.value.line == f"error: {message}"


def test_tls_accepts_pkcs8_and_ecdsa(tls_pairs: dict[str, bytes]) -> None:
    assert (
        secret_tls("a", cert=tls_pairs["rsa.crt"], key=tls_pairs["rsa.pk8"])["type"]
        == "kubernetes.io/tls"
    )
    assert (
        "namespace"
        not in secret_tls("b", cert=tls_pairs["ec.crt"], key=tls_pairs["ec.key"])["metadata"]
    )


@pytest.mark.parametrize(
    ("cert", "key", "message"),
    [
        ("none", "rsa.key", "tls: failed to find any PEM data in certificate input"),
        (
            "rsa.key",
            "rsa.crt",
            "tls: failed to find certificate PEM data in certificate input, but did find a "
            "private key; PEM inputs may have been switched",
        ),
        ("rsa.crt", "none", "tls: failed to find any PEM data in key input"),
        (
            "rsa.crt",
            "rsa.crt",
            "tls: found a certificate rather than a key in the PEM for the private key",
        ),
        ("rsa.crt", "other.key", "tls: private key does not match public key"),
        ("rsa.crt", "ec.key", "tls: private key type does not match public key type"),
        ("ec.crt", "rsa.key", "tls: private key type does not match public key type"),
        ("rsa.crt", "garbage", "tls: failed to parse private key"),
    ],
)
def test_tls_checks(tls_pairs: dict[str, bytes], cert: str, key: str, message: str) -> None:
    extra = {
        "none": b"not a pem file\n",
        "garbage": b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    }
    pairs = {**tls_pairs, **extra}
    with pytest.raises(KubectlError) as caught:
        secret_tls("x", cert=pairs[cert], key=pairs[key])
    assert caught.value.line == f"error: {message}"
