"""What a container is made of, as the entry program (``meshlet.runtime.enter``) reads
it: the command, its environment and gid, the pod's network namespace and the mounts of
its own mount namespace.

Pure: a value and its JSON form. ``meshlet.runtime.container`` writes the JSON file
and starts ``python -m meshlet.runtime.enter FILE``.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ContainerSpec", "Mount"]


def _absolute(path: str, what: str) -> str:
    if not path.startswith("/") or "\x00" in path:
        raise ValueError(f"{what} {path!r} must be an absolute path")
    normal = posixpath.normpath(path)
    return "/" if normal == "//" else normal


@dataclass(frozen=True, slots=True)
class Mount:
    """A host directory or file bind-mounted at ``target`` inside the container."""

    source: str
    target: str
    read_only: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "source", _absolute(self.source, "mount source"))
        object.__setattr__(self, "target", _absolute(self.target, "mountPath"))
        if self.target == "/":
            raise ValueError("a volume cannot be mounted at /")

    @property
    def depth(self) -> int:
        return self.target.count("/")


@dataclass(frozen=True, slots=True)
class ContainerSpec:
    """One container of a pod, ready to start."""

    argv: tuple[str, ...]
    netns: str  # the pod's network namespace file
    scratch_dir: str  # an empty host directory where the container's private tmpfs goes
    env: tuple[tuple[str, str], ...] = ()
    gid: int = 0
    workdir: str = "/"
    mounts: tuple[Mount, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.argv:
            raise ValueError("a container needs a command")
        _absolute(self.netns, "network namespace")
        _absolute(self.scratch_dir, "scratch directory")
        _absolute(self.workdir, "workingDir")
        if not 0 <= self.gid < 2**32:
            raise ValueError(f"gid {self.gid} is out of range")
        targets = [m.target for m in self.mounts]
        if len(set(targets)) != len(targets):
            raise ValueError("two mounts have the same mountPath")

    @classmethod
    def build(
        cls,
        argv: list[str] | tuple[str, ...],
        *,
        netns: str,
        scratch_dir: str,
        env: Mapping[str, str] | None = None,
        gid: int = 0,
        workdir: str = "/",
        mounts: list[Mount] | tuple[Mount, ...] = (),
    ) -> ContainerSpec:
        return cls(
            argv=tuple(argv),
            netns=netns,
            scratch_dir=scratch_dir,
            env=tuple(sorted((env or {}).items())),
            gid=gid,
            workdir=workdir,
            mounts=tuple(mounts),
        )

    def mounts_in_order(self) -> list[Mount]:
        """Parents before children, so a nested mountPath lands on its parent's mount."""
        return sorted(self.mounts, key=lambda m: (m.depth, m.target))

    def to_json(self) -> str:
        return json.dumps(
            {
                "argv": list(self.argv),
                "netns": self.netns,
                "scratch_dir": self.scratch_dir,
                "env": [list(pair) for pair in self.env],
                "gid": self.gid,
                "workdir": self.workdir,
                "mounts": [
                    {"source": m.source, "target": m.target, "read_only": m.read_only}
                    for m in self.mounts
                ],
            },
            indent=2,
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> ContainerSpec:
        raw: Any = json.loads(text)
        if not isinstance(raw, dict):
            raise ValueError("a container spec is a JSON object")
        try:
            return cls(
                argv=tuple(str(a) for a in raw["argv"]),
                netns=str(raw["netns"]),
                scratch_dir=str(raw["scratch_dir"]),
                env=tuple((str(k), str(v)) for k, v in raw.get("env", [])),
                gid=int(raw.get("gid", 0)),
                workdir=str(raw.get("workdir", "/")),
                mounts=tuple(
                    Mount(str(m["source"]), str(m["target"]), bool(m.get("read_only", False)))
                    for m in raw.get("mounts", [])
                ),
            )
        except (KeyError, TypeError) as error:
            raise ValueError(f"a container spec is missing or mistypes {error}") from None
