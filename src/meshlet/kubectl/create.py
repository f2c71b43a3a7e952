"""The objects ``create namespace`` and ``create secret generic|tls`` build.

Pure: the caller reads the files (``--from-file``, ``--cert``, ``--key``) and passes
their bytes; these functions check them as kubectl does and return the object as
kubectl sends it (and prints it for ``--dry-run=client -o yaml``): ``apiVersion``,
``kind``, ``metadata`` with the name (and the namespace when ``-n`` was given),
``data`` as base64, ``type``. As in current kubectl (since Kubernetes 1.33) a
zero ``creationTimestamp`` is left out rather than printed as ``null``.
``tls`` checks the pair as Go's ``tls.X509KeyPair`` does, with its messages.
"""

from __future__ import annotations

import base64
import binascii
import posixpath
import re
from collections.abc import Sequence
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_der_private_key

from meshlet.kubectl.messages import KubectlError

__all__ = [
    "namespace_object",
    "parse_file_source",
    "parse_literal_source",
    "secret_generic",
    "secret_tls",
]


def namespace_object(name: str) -> dict[str, Any]:
    """``create namespace NAME``."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name},
        "spec": {},
        "status": {},
    }


def parse_file_source(source: str) -> tuple[str, str]:
    """``--from-file=[key=]path`` to ``(key, path)``; the key defaults to the file's name."""
    separators = source.count("=")
    if separators == 0:
        return posixpath.basename(source.replace("\\", "/")), source
    if separators == 1 and source.startswith("="):
        raise KubectlError(f"key name for file path {source[1:]} missing")
    if separators == 1 and source.endswith("="):
        raise KubectlError(f"file path for key name {source[:-1]} missing")
    if separators > 1:
        raise KubectlError("key names or file paths cannot contain '='")
    key, path = source.split("=")
    return key, path


def parse_literal_source(source: str) -> tuple[str, str]:
    """``--from-literal=key=value`` to ``(key, value)``; the value may contain ``=``."""
    if source.startswith("=") or "=" not in source:
        raise KubectlError(f"invalid literal source {source}, expected key=value")
    key, value = source.split("=", 1)
    return key, value


_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


def _key_errors(key: str) -> list[str]:
    errors: list[str] = []
    if len(key) > 253:
        errors.append("must be no more than 253 characters")
    if not _CONFIG_KEY.match(key):
        errors.append(
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.' "
            "(e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is "
            "'[-._a-zA-Z0-9]+')"
        )
    if key == ".":
        errors.append("must not be '.'")
    elif key == "..":
        errors.append("must not be '..'")
    elif key.startswith(".."):
        errors.append("must not start with '..'")
    return errors


def _add(data: dict[str, bytes], key: str, value: bytes) -> None:
    errors = _key_errors(key)
    if errors:
        raise KubectlError(f'"{key}" is not valid key name for a Secret {";".join(errors)}')
    if key in data:
        raise KubectlError(f"cannot add key {key}, another key by that name already exists")
    data[key] = value


def _secret(
    name: str, namespace: str | None, secret_type: str, data: dict[str, bytes]
) -> dict[str, Any]:
    if not name:
        raise KubectlError("name must be specified")
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "Secret", "metadata": metadata}
    if data:
        obj["data"] = {k: base64.b64encode(v).decode("ascii") for k, v in sorted(data.items())}
    if secret_type:
        obj["type"] = secret_type
    return obj


def secret_generic(
    name: str,
    *,
    namespace: str | None = None,
    literals: Sequence[str] = (),
    files: Sequence[tuple[str, bytes]] = (),
    secret_type: str = "",
) -> dict[str, Any]:
    """``create secret generic NAME [--from-literal=k=v]… [--from-file=[k=]path]…``.

    ``literals`` are the ``--from-literal`` texts; ``files`` the ``(key, contents)``
    of each file named (the caller parses ``--from-file`` with ``parse_file_source``
    and, for a directory, passes each regular file under its own name).
    """
    data: dict[str, bytes] = {}
    for literal in literals:
        key, value = parse_literal_source(literal)
        _add(data, key, value.encode())
    for key, contents in files:
        _add(data, key, contents)
    return _secret(name, namespace, secret_type, data)


# --- tls -----------------------------------------------------------------------------

_PEM_BLOCK = re.compile(rb"-----BEGIN ([^\r\n]*?)-----\r?\n(.*?)-----END \1-----", re.DOTALL)


def _pem_blocks(data: bytes) -> list[tuple[str, bytes]]:
    """The PEM blocks of ``data`` that decode, as Go's ``pem.Decode`` finds them."""
    blocks: list[tuple[str, bytes]] = []
    for match in _PEM_BLOCK.finditer(data):
        lines = match.group(2).splitlines()
        if any(b":" in line for line in lines):  # RFC 1421 headers, then a blank line
            while lines and lines[0].strip():
                lines.pop(0)
        try:
            der = base64.b64decode(b"".join(line.strip() for line in lines), validate=True)
        except (binascii.Error, ValueError):
            continue
        blocks.append((match.group(1).decode("latin-1"), der))
    return blocks


def _check_key_pair(cert_pem: bytes, key_pem: bytes) -> None:
    certificates: list[bytes] = []
    skipped: list[str] = []
    for block_type, der in _pem_blocks(cert_pem):
        if block_type == "CERTIFICATE":
            certificates.append(der)
        else:
            skipped.append(block_type)
    if not certificates:
        if not skipped:
            raise KubectlError("tls: failed to find any PEM data in certificate input")
        if len(skipped) == 1 and skipped[0].endswith("PRIVATE KEY"):
            raise KubectlError(
                "tls: failed to find certificate PEM data in certificate input, but did find "
                "a private key; PEM inputs may have been switched"
            )
        raise KubectlError(
            'tls: failed to find "CERTIFICATE" PEM block in certificate input after skipping '
            f"PEM blocks of the following types: [{' '.join(skipped)}]"
        )
    skipped = []
    key_der: bytes | None = None
    for block_type, der in _pem_blocks(key_pem):
        if block_type == "PRIVATE KEY" or block_type.endswith(" PRIVATE KEY"):
            key_der = der
            break
        skipped.append(block_type)
    if key_der is None:
        if not skipped:
            raise KubectlError("tls: failed to find any PEM data in key input")
        if skipped == ["CERTIFICATE"]:
            raise KubectlError(
                "tls: found a certificate rather than a key in the PEM for the private key"
            )
        raise KubectlError(
            'tls: failed to find PEM block with type ending in "PRIVATE KEY" in key input after '
            f"skipping PEM blocks of the following types: [{' '.join(skipped)}]"
        )
    try:
        public_key = x509.load_der_x509_certificate(certificates[0]).public_key()
    except ValueError:
        raise KubectlError("x509: malformed certificate") from None
    try:
        private_key = load_der_private_key(key_der, password=None)
    except (ValueError, TypeError):
        raise KubectlError("tls: failed to parse private key") from None
    except Exception:  # an algorithm the backend does not support
        raise KubectlError("tls: failed to parse private key") from None
    if not isinstance(
        private_key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    ):
        raise KubectlError("tls: found unknown private key type in PKCS#8 wrapping")
    if isinstance(public_key, rsa.RSAPublicKey):
        if not isinstance(private_key, rsa.RSAPrivateKey):
            raise KubectlError("tls: private key type does not match public key type")
        if public_key.public_numbers().n != private_key.public_key().public_numbers().n:
            raise KubectlError("tls: private key does not match public key")
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        if not isinstance(private_key, ec.EllipticCurvePrivateKey):
            raise KubectlError("tls: private key type does not match public key type")
        ours, theirs = public_key.public_numbers(), private_key.public_key().public_numbers()
        if (ours.x, ours.y) != (theirs.x, theirs.y):
            raise KubectlError("tls: private key does not match public key")
    elif isinstance(public_key, ed25519.Ed25519PublicKey):
        if not isinstance(private_key, ed25519.Ed25519PrivateKey):
            raise KubectlError("tls: private key type does not match public key type")
        if public_key != private_key.public_key():
            raise KubectlError("tls: private key does not match public key")
    else:
        raise KubectlError("tls: unknown public key algorithm")


def secret_tls(
    name: str, *, cert: bytes, key: bytes, namespace: str | None = None
) -> dict[str, Any]:
    """``create secret tls NAME --cert=… --key=…``: a ``kubernetes.io/tls`` Secret.

    The certificate must hold a PEM ``CERTIFICATE`` and the key a matching private
    key; otherwise ``KubectlError`` with Go's ``tls`` message.
    """
    _check_key_pair(cert, key)
    return _secret(name, namespace, "kubernetes.io/tls", {"tls.crt": cert, "tls.key": key})
