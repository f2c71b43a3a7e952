"""Where one local cluster keeps its state: ``MESHLET_HOME`` and the files in it.

Pure: paths only, nothing is read or made here. The CLI reads the environment and
passes the directory in (``ClusterHome.from_environment`` is the one place that does).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

from meshlet.runtime.config import NodeConfig

__all__ = [
    "DEFAULT_HOME",
    "ClusterHome",
    "node_config_from_json",
    "node_config_to_json",
]

DEFAULT_HOME = Path("/var/lib/meshlet")


@dataclass(frozen=True, slots=True)
class ClusterHome:
    """The files of one local cluster under ``root``."""

    root: Path

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> ClusterHome:
        return cls(Path(environ.get("MESHLET_HOME") or DEFAULT_HOME))

    @property
    def socket(self) -> Path:
        return self.root / "meshlet.sock"

    @property
    def database(self) -> Path:
        return self.root / "cluster.db"

    @property
    def ca_dir(self) -> Path:
        return self.root / "ca"

    @property
    def pods_dir(self) -> Path:
        return self.root / "pods"

    def pod_dir(self, uid: str) -> Path:
        return self.pods_dir / uid

    @property
    def pid_file(self) -> Path:
        return self.root / "daemon.pid"

    @property
    def log_file(self) -> Path:
        return self.root / "daemon.log"

    @property
    def settings_file(self) -> Path:
        return self.root / "settings.json"

    @property
    def node_file(self) -> Path:
        return self.root / "node.json"

    @property
    def images_file(self) -> Path:
        return self.root / "images.yaml"


def node_config_to_json(config: NodeConfig) -> str:
    """The node's prefix and ranges, as ``node.json`` keeps them."""
    return json.dumps(
        {
            "prefix": config.prefix,
            "podCIDR": str(config.pod_cidr),
            "serviceCIDR": str(config.service_cidr),
        },
        indent=2,
        sort_keys=True,
    )


def node_config_from_json(text: str) -> NodeConfig:
    raw: Any = json.loads(text)
    if not isinstance(raw, dict):
        raise ValueError("node.json must hold an object")
    return NodeConfig(
        prefix=str(raw["prefix"]),
        pod_cidr=IPv4Network(str(raw["podCIDR"])),
        service_cidr=IPv4Network(str(raw["serviceCIDR"])),
    )
