"""What validation reports: a level, a message and the field it is about."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from meshlet.resources.schema import format_path
from meshlet.resources.yamlsource import Path

__all__ = ["Finding", "Level", "cel_error", "error", "warning"]


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


def error(message: str, path: Path) -> Finding:
    return Finding(Level.ERROR, message, path)


def warning(message: str, path: Path) -> Finding:
    return Finding(Level.WARNING, message, path)


def cel_error(message: str, path: Path) -> Finding:
    """A CRD ``x-kubernetes-validations`` rule that failed, as the API server words it."""
    return Finding(Level.ERROR, f"{format_path(path)}: Invalid value: {message}", path)
