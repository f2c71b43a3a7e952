"""A workload's ``sidecar.istio.io/userVolume`` and ``userVolumeMount``, read as the
injector reads them (``meshlet.daemon.injection``), with what went wrong if they cannot
be read, and the mounts the injector itself gives the sidecar."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from meshlet.analyzers.context import WorkloadSource
from meshlet.daemon.injection import (
    PROXY_CONTAINER,
    USER_VOLUME,
    USER_VOLUME_MOUNT,
    inject,
    parse_user_volume_mounts,
    parse_user_volumes,
)
from meshlet.errors import ConfigError

__all__ = [
    "INJECTOR_MOUNT_PATHS",
    "INJECTOR_VOLUMES",
    "USER_VOLUME",
    "USER_VOLUME_MOUNT",
    "UserVolumes",
    "covered",
    "read_user_volumes",
]


def _injector_defaults() -> tuple[tuple[str, ...], frozenset[str]]:
    pod = inject({"metadata": {"name": "probe"}, "spec": {"containers": []}})
    proxy = next(c for c in pod["spec"]["containers"] if c["name"] == PROXY_CONTAINER)
    paths = tuple(sorted(str(m["mountPath"]) for m in proxy.get("volumeMounts") or []))
    volumes = frozenset(str(v["name"]) for v in pod["spec"].get("volumes") or [])
    return paths, volumes


INJECTOR_MOUNT_PATHS, INJECTOR_VOLUMES = _injector_defaults()


@dataclass(frozen=True, slots=True)
class UserVolumes:
    """The user volumes and mounts; ``problems`` maps an annotation to why it is unreadable."""

    volumes: tuple[dict[str, Any], ...] = ()
    mounts: tuple[dict[str, Any], ...] = ()
    problems: tuple[tuple[str, str], ...] = ()

    @property
    def readable(self) -> bool:
        return not self.problems


def _problem(annotation: str, raw: str, error: ConfigError) -> str:
    try:
        json.loads(raw)
    except json.JSONDecodeError as exc:
        return f"is not valid JSON: {exc.msg} at character {exc.pos + 1}"
    prefix = f"injection failed: annotation {annotation}: "
    return error.message.removeprefix(prefix)


def read_user_volumes(workload: WorkloadSource) -> UserVolumes:
    annotations = workload.annotations
    problems: list[tuple[str, str]] = []
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    try:
        volumes = parse_user_volumes(annotations)
    except ConfigError as error:
        problems.append((USER_VOLUME, _problem(USER_VOLUME, annotations[USER_VOLUME], error)))
    try:
        mounts = parse_user_volume_mounts(annotations)
    except ConfigError as error:
        problems.append(
            (USER_VOLUME_MOUNT, _problem(USER_VOLUME_MOUNT, annotations[USER_VOLUME_MOUNT], error))
        )
    return UserVolumes(tuple(volumes), tuple(mounts), tuple(problems))


def covered(path: str, mount_paths: tuple[str, ...]) -> bool:
    """Whether a file ``path`` lies in one of the mounted directories (or is one)."""
    for mount in mount_paths:
        directory = mount.rstrip("/")
        if path == directory or path.startswith(directory + "/"):
            return True
    return False
