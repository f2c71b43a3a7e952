"""``meshlet analyze``: findings in ``istioctl analyze``'s form.

Each message is ``Level [CODE] (Kind namespace/name file:line) text``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from meshlet.errors import Location, ObjectRef
from meshlet.resources.mesh import MeshSettings
from meshlet.resources.objects import Resource
from meshlet.resources.validation import Level, validate

__all__ = ["Message", "analyze"]

SCHEMA_VALIDATION_ERROR = "IST0106"


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


def analyze(resources: Iterable[Resource], mesh: MeshSettings) -> list[Message]:
    """Every finding about ``resources``, errors first, then by resource and line."""
    messages: list[Message] = []
    for resource in resources:
        for finding in validate(resource):
            messages.append(
                Message(
                    finding.level,
                    SCHEMA_VALIDATION_ERROR,
                    resource.ref,
                    resource.location_of(finding.path),
                    finding.message,
                )
            )
    order = {Level.ERROR: 0, Level.WARNING: 1, Level.INFO: 2}
    return sorted(
        messages,
        key=lambda m: (order[m.level], str(m.resource), m.location.line if m.location else 0),
    )
