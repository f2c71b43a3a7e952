"""What ``meshlet analyze`` reports: messages in ``istioctl analyze``'s form, and the
catalog of message types (Istio's codes where Istio has the check, ``MSH…`` for
meshlet's own).

A message prints as ``Level [CODE] (Kind namespace/name file:line) text``; an object
read from a running cluster has no file, so only ``(Kind namespace/name)`` is shown.
``docs/analyzers.md`` documents every type of ``CATALOG``.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from meshlet.errors import Location, ObjectRef
from meshlet.resources.validation import Level

__all__ = [
    "CATALOG",
    "CONFLICTING_SIDECAR_WORKLOAD_SELECTORS",
    "INVALID_USER_VOLUME_ANNOTATION",
    "MULTIPLE_SIDECARS_WITHOUT_WORKLOAD_SELECTORS",
    "NAMESPACE_NOT_INJECTED",
    "NO_MATCHING_WORKLOADS_FOUND",
    "POLICY_TARGETS_UNINJECTED_WORKLOAD",
    "PORT_LEVEL_MTLS_ON_SERVICE_PORT",
    "PORT_NAME_IS_NOT_UNDER_NAMING_CONVENTION",
    "SCHEMA_VALIDATION_ERROR",
    "SCHEMA_WARNING",
    "SERVICE_SELECTS_NO_PODS",
    "SERVICE_WITHOUT_SELECTOR",
    "SIDECAR_INGRESS_TLS_IGNORED",
    "SIDECAR_TLS_FILE_NOT_MOUNTED",
    "TLS_PORT_SERVES_PLAINTEXT",
    "USER_VOLUME_MOUNT_UNDECLARED",
    "USER_VOLUME_SECRET_NOT_FOUND",
    "Message",
    "MessageType",
    "sorted_messages",
]


@dataclass(frozen=True, slots=True)
class MessageType:
    """One kind of finding: its code, Istio's (or meshlet's) name and its usual level."""

    code: str
    name: str
    level: Level

    def message(
        self,
        text: str,
        resource: ObjectRef | None,
        location: Location | None,
        *,
        level: Level | None = None,
    ) -> Message:
        """A message of this type; ``level`` overrides the usual one where the docs say so."""
        return Message(level or self.level, self.code, resource, location, text)


@dataclass(frozen=True, slots=True)
class Message:
    level: Level
    code: str
    resource: ObjectRef | None
    location: Location | None
    text: str

    def __str__(self) -> str:
        origin = " ".join(str(part) for part in (self.resource, self.location) if part is not None)
        where = f" ({origin})" if origin else ""
        return f"{self.level.value} [{self.code}]{where} {self.text}"


# --- Istio's codes (galley/pkg/config/analysis/msg/messages.yaml) -------------------------

SCHEMA_VALIDATION_ERROR = MessageType("IST0106", "SchemaValidationError", Level.ERROR)
SCHEMA_WARNING = MessageType("IST0133", "SchemaWarning", Level.WARNING)
NAMESPACE_NOT_INJECTED = MessageType("IST0102", "NamespaceNotInjected", Level.INFO)
CONFLICTING_SIDECAR_WORKLOAD_SELECTORS = MessageType(
    "IST0110", "ConflictingSidecarWorkloadSelectors", Level.ERROR
)
MULTIPLE_SIDECARS_WITHOUT_WORKLOAD_SELECTORS = MessageType(
    "IST0111", "MultipleSidecarsWithoutWorkloadSelectors", Level.ERROR
)
PORT_NAME_IS_NOT_UNDER_NAMING_CONVENTION = MessageType(
    "IST0118", "PortNameIsNotUnderNamingConvention", Level.INFO
)
NO_MATCHING_WORKLOADS_FOUND = MessageType("IST0127", "NoMatchingWorkloadsFound", Level.WARNING)

# --- meshlet's own (docs/analyzers.md) ---------------------------------------------------

SIDECAR_INGRESS_TLS_IGNORED = MessageType("MSH0001", "SidecarIngressTLSIgnored", Level.WARNING)
PORT_LEVEL_MTLS_ON_SERVICE_PORT = MessageType(
    "MSH0002", "PortLevelMtlsOnServicePort", Level.WARNING
)
SIDECAR_TLS_FILE_NOT_MOUNTED = MessageType("MSH0003", "SidecarTLSFileNotMounted", Level.WARNING)
USER_VOLUME_SECRET_NOT_FOUND = MessageType("MSH0004", "UserVolumeSecretNotFound", Level.WARNING)
INVALID_USER_VOLUME_ANNOTATION = MessageType("MSH0005", "InvalidUserVolumeAnnotation", Level.ERROR)
USER_VOLUME_MOUNT_UNDECLARED = MessageType("MSH0006", "UserVolumeMountUndeclared", Level.ERROR)
SERVICE_SELECTS_NO_PODS = MessageType("MSH0007", "ServiceSelectsNoPods", Level.WARNING)
SERVICE_WITHOUT_SELECTOR = MessageType("MSH0008", "ServiceWithoutSelector", Level.WARNING)
POLICY_TARGETS_UNINJECTED_WORKLOAD = MessageType(
    "MSH0009", "PolicyTargetsUninjectedWorkload", Level.WARNING
)
TLS_PORT_SERVES_PLAINTEXT = MessageType("MSH0010", "TLSPortServesPlaintext", Level.WARNING)

CATALOG: tuple[MessageType, ...] = tuple(
    sorted(
        (
            SCHEMA_VALIDATION_ERROR,
            SCHEMA_WARNING,
            NAMESPACE_NOT_INJECTED,
            CONFLICTING_SIDECAR_WORKLOAD_SELECTORS,
            MULTIPLE_SIDECARS_WITHOUT_WORKLOAD_SELECTORS,
            PORT_NAME_IS_NOT_UNDER_NAMING_CONVENTION,
            NO_MATCHING_WORKLOADS_FOUND,
            SIDECAR_INGRESS_TLS_IGNORED,
            PORT_LEVEL_MTLS_ON_SERVICE_PORT,
            SIDECAR_TLS_FILE_NOT_MOUNTED,
            USER_VOLUME_SECRET_NOT_FOUND,
            INVALID_USER_VOLUME_ANNOTATION,
            USER_VOLUME_MOUNT_UNDECLARED,
            SERVICE_SELECTS_NO_PODS,
            SERVICE_WITHOUT_SELECTOR,
            POLICY_TARGETS_UNINJECTED_WORKLOAD,
            TLS_PORT_SERVES_PLAINTEXT,
        ),
        key=lambda t: t.code,
    )
)

_LEVEL_ORDER = {Level.ERROR: 0, Level.WARNING: 1, Level.INFO: 2}


def sorted_messages(messages: Iterable[Message]) -> list[Message]:
    """istioctl's order (level, code, resource, line text), without exact duplicates."""
    ordered = sorted(
        messages,
        key=lambda m: (
            _LEVEL_ORDER[m.level],
            m.code,
            m.resource is not None,
            str(m.resource or ""),
            str(m),
        ),
    )
    unique: list[Message] = []
    for message in ordered:
        if not unique or str(unique[-1]) != str(message):
            unique.append(message)
    return unique
