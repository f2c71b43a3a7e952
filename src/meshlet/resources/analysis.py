"""``meshlet analyze``: findings in ``istioctl analyze``'s form.

Each message is ``Level [CODE] (Kind namespace/name file:line) text``, as istioctl
prints the messages of its schema-validation analyzer: validation errors are
``IST0106`` ("Schema validation error: …") and validation warnings ``IST0133``
("Schema validation warning: …"). Messages are sorted as istioctl sorts them —
by level (errors first), code, resource, then the whole line — and exact
duplicates are dropped.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from meshlet.errors import Location, MeshletError, ObjectRef
from meshlet.resources.mesh import MeshSettings
from meshlet.resources.objects import Resource
from meshlet.resources.validation import Finding, Level, validate

__all__ = [
    "SCHEMA_VALIDATION_ERROR",
    "SCHEMA_WARNING",
    "Message",
    "analyze",
    "load_error_messages",
    "sorted_messages",
]

SCHEMA_VALIDATION_ERROR = "IST0106"
SCHEMA_WARNING = "IST0133"

_LEVEL_ORDER = {Level.ERROR: 0, Level.WARNING: 1, Level.INFO: 2}


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


def finding_message(resource: Resource, finding: Finding) -> Message:
    """A validation finding as istioctl's schema analyzer reports it."""
    if finding.level is Level.ERROR:
        code, text = SCHEMA_VALIDATION_ERROR, f"Schema validation error: {finding.message}"
    else:
        code, text = SCHEMA_WARNING, f"Schema validation warning: {finding.message}"
    return Message(finding.level, code, resource.ref, resource.location_of(finding.path), text)


def load_error_messages(errors: Iterable[MeshletError]) -> list[Message]:
    """Input that could not be decoded (bad YAML, unknown field …), one message each."""
    return sorted_messages(
        Message(
            Level.ERROR,
            SCHEMA_VALIDATION_ERROR,
            error.resource,
            error.location,
            f"Schema validation error: {error.message}",
        )
        for error in errors
    )


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


def analyze(resources: Iterable[Resource], mesh: MeshSettings) -> list[Message]:
    """Every finding about ``resources``, in istioctl's order."""
    del mesh  # the schema checks do not depend on mesh settings; later analyzers will
    return sorted_messages(
        finding_message(resource, finding)
        for resource in resources
        for finding in validate(resource)
    )
