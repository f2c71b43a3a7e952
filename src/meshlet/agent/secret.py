"""The secrets the agent serves, and the resource names Envoy asks for them by.

Names, as Istio's agent knows them:

- ``default``: the workload certificate chain and its key;
- ``ROOTCA``: the mesh root, for validating peers;
- ``file-cert:<cert>~<key>``: a certificate chain and key read from files;
- ``file-root:<ca>``: CA certificates read from a file.

``parse_resource_name`` splits a name exactly as Istio's
``SdsCertificateConfigFromResourceName`` does: ``file-cert:`` must hold exactly one
``~``, ``file-root:`` none. A name that is not a usable file name (malformed, or with
an empty path) is served as the workload certificate, as Istio does for every name
other than ``ROOTCA`` and the file names.

Pure: values and string parsing only.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

__all__ = [
    "FILE_CERT_PREFIX",
    "FILE_ROOT_PREFIX",
    "RESOURCE_SEPARATOR",
    "ROOT_CERT_RESOURCE_NAME",
    "WORKLOAD_CERT_RESOURCE_NAME",
    "FileCertificate",
    "FileRoot",
    "SecretItem",
    "SecretKind",
    "SecretSource",
    "kind_of",
    "parse_resource_name",
    "source_of",
]

WORKLOAD_CERT_RESOURCE_NAME = "default"
ROOT_CERT_RESOURCE_NAME = "ROOTCA"
FILE_CERT_PREFIX = "file-cert:"
FILE_ROOT_PREFIX = "file-root:"
RESOURCE_SEPARATOR = "~"


class SecretKind(enum.Enum):
    """What an SDS secret holds, as Istio's ``toEnvoySecret`` chooses it."""

    TLS_CERTIFICATE = "tls_certificate"
    VALIDATION_CONTEXT = "validation_context"


class SecretSource(enum.Enum):
    """Where the agent gets a resource from."""

    WORKLOAD = "workload"  # the CA-signed workload certificate
    ROOT = "root"  # the mesh root
    FILE_CERT = "file-cert"
    FILE_ROOT = "file-root"


@dataclass(frozen=True, slots=True)
class FileCertificate:
    """``file-cert:<certificate_path>~<private_key_path>``."""

    certificate_path: str
    private_key_path: str

    @property
    def resource_name(self) -> str:
        return (
            f"{FILE_CERT_PREFIX}{self.certificate_path}{RESOURCE_SEPARATOR}{self.private_key_path}"
        )


@dataclass(frozen=True, slots=True)
class FileRoot:
    """``file-root:<ca_certificate_path>``."""

    ca_certificate_path: str

    @property
    def resource_name(self) -> str:
        return f"{FILE_ROOT_PREFIX}{self.ca_certificate_path}"


def parse_resource_name(name: str) -> FileCertificate | FileRoot | None:
    """The files a ``file-cert:``/``file-root:`` name refers to; ``None`` if not one.

    Splits as Istio does: a ``file-cert:`` name must have exactly one ``~``; a
    ``file-root:`` name must have none. The paths are kept as written (they may be
    empty: see ``source_of``).
    """
    if name.startswith(FILE_CERT_PREFIX):
        parts = name[len(FILE_CERT_PREFIX) :].split(RESOURCE_SEPARATOR)
        if len(parts) != 2:
            return None
        return FileCertificate(parts[0], parts[1])
    if name.startswith(FILE_ROOT_PREFIX):
        parts = name[len(FILE_ROOT_PREFIX) :].split(RESOURCE_SEPARATOR)
        if len(parts) != 1:
            return None
        return FileRoot(parts[0])
    return None


def source_of(name: str) -> SecretSource:
    """Where the resource ``name`` is served from."""
    if name == ROOT_CERT_RESOURCE_NAME:
        return SecretSource.ROOT
    parsed = parse_resource_name(name)
    if isinstance(parsed, FileRoot) and parsed.ca_certificate_path:
        return SecretSource.FILE_ROOT
    if isinstance(parsed, FileCertificate) and (
        parsed.certificate_path and parsed.private_key_path
    ):
        return SecretSource.FILE_CERT
    return SecretSource.WORKLOAD


def kind_of(name: str) -> SecretKind:
    """Istio's ``toEnvoySecret`` rule: ``ROOTCA`` and ``file-root:*`` are validation
    contexts; every other name is a certificate and its key."""
    if name == ROOT_CERT_RESOURCE_NAME or name.startswith(FILE_ROOT_PREFIX):
        return SecretKind.VALIDATION_CONTEXT
    return SecretKind.TLS_CERTIFICATE


@dataclass(frozen=True, slots=True)
class SecretItem:
    """One secret as served: a certificate chain and key, or trusted CA certificates.

    ``private_key`` is kept out of ``repr`` so it cannot reach a log by accident.
    """

    resource_name: str
    certificate_chain: bytes = b""
    private_key: bytes = field(default=b"", repr=False)
    trusted_ca: bytes = b""

    @property
    def kind(self) -> SecretKind:
        """``ROOTCA`` and ``file-root:*`` validate peers; the rest are certificates."""
        return kind_of(self.resource_name)

    def renamed(self, resource_name: str) -> SecretItem:
        """The same material served under another name."""
        return SecretItem(
            resource_name=resource_name,
            certificate_chain=self.certificate_chain,
            private_key=self.private_key,
            trusted_ca=self.trusted_ca,
        )
