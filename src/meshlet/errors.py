"""The one exception tree of meshlet.

Every error a user can cause carries where it is: the source file and line, the
resource (``kind/namespace/name``) and the field path. The CLI turns a
``MeshletError`` into one line and an exit code; a traceback is a bug.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "AuthenticationError",
    "AuthorizationError",
    "CARequestError",
    "CertificateError",
    "ConfigError",
    "ErrorList",
    "ExitCode",
    "LoadError",
    "Location",
    "MeshletError",
    "ObjectRef",
    "SourceError",
    "TLSConfigError",
    "UsageError",
]


class ExitCode(enum.IntEnum):
    """Exit codes of the ``meshlet`` command (documented in the README)."""

    OK = 0
    ERROR = 1  # invalid input: YAML, schema, validation, an Error finding of analyze
    USAGE = 2  # bad command line
    UNAVAILABLE = 3  # the local cluster is not running or not reachable
    NOT_FOUND = 4  # the object named does not exist


@dataclass(frozen=True, slots=True)
class Location:
    """A place in a source: a file (``-`` for stdin) and a 1-based line."""

    file: str
    line: int | None = None

    def __str__(self) -> str:
        return self.file if self.line is None else f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """A resource as Istio names it in messages: ``Kind namespace/name``."""

    kind: str
    name: str
    namespace: str | None = None

    def __str__(self) -> str:
        if self.namespace:
            return f"{self.kind} {self.namespace}/{self.name}"
        return f"{self.kind} {self.name}"


class MeshletError(Exception):
    """Base of every error meshlet reports to a user."""

    exit_code: ExitCode = ExitCode.ERROR

    def __init__(
        self,
        message: str,
        *,
        location: Location | None = None,
        resource: ObjectRef | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.location = location
        self.resource = resource
        self.field = field

    def __str__(self) -> str:
        where = []
        if self.location is not None:
            where.append(str(self.location))
        if self.resource is not None:
            where.append(str(self.resource))
        prefix = f"{' '.join(where)}: " if where else ""
        return f"{prefix}{self.message}"


class UsageError(MeshletError):
    exit_code = ExitCode.USAGE


class LoadError(MeshletError):
    """Input that cannot be read or decoded: bad YAML, unknown kind or field, wrong type."""


class SourceError(LoadError):
    """A file, directory or stream that cannot be read at all."""


class ConfigError(MeshletError):
    """A resource that decodes but breaks Istio's or Kubernetes' validation rules."""


class TLSConfigError(ConfigError):
    """TLS settings that cannot be served."""


class ErrorList(MeshletError):
    """Several errors found in one pass (every problem of a file, not only the first)."""

    def __init__(self, errors: list[MeshletError]) -> None:
        if not errors:
            raise ValueError("ErrorList needs at least one error")
        first = errors[0]
        super().__init__(
            first.message, location=first.location, resource=first.resource, field=first.field
        )
        self.errors = errors
        self.exit_code = max(e.exit_code for e in errors)

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)


class CertificateError(MeshletError):
    """A CSR, certificate or key that cannot be signed, loaded or used (the mesh CA)."""


class AuthenticationError(MeshletError):
    """A caller whose proof of identity (a pod token, a mesh certificate) is bad or missing."""


class AuthorizationError(MeshletError):
    """A caller whose proven identity does not allow what it asks (another namespace's config)."""


class CARequestError(MeshletError):
    """A call to the mesh CA that failed; ``code`` is the gRPC status name (``UNAUTHENTICATED``)."""

    exit_code = ExitCode.UNAVAILABLE

    def __init__(self, message: str, *, code: str, details: str) -> None:
        super().__init__(message)
        self.code = code
        self.details = details
