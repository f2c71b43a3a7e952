"""The kinds meshlet reads, each described once with the schema language.

``KINDS`` lists them; ``lookup`` finds one by ``apiVersion`` and ``kind``.
"""

from __future__ import annotations

from meshlet.resources.kinds._registry import KindInfo
from meshlet.resources.kinds.apps_v1 import KINDS as _APPS
from meshlet.resources.kinds.core_v1 import KINDS as _CORE
from meshlet.resources.kinds.istio import KINDS as _ISTIO

__all__ = ["KINDS", "KindInfo", "lookup", "supported_kinds"]

KINDS: tuple[KindInfo, ...] = (*_CORE, *_APPS, *_ISTIO)

_BY_API: dict[tuple[str, str], KindInfo] = {
    (api_version, info.kind): info for info in KINDS for api_version in info.api_versions
}


def lookup(api_version: str, kind: str) -> KindInfo | None:
    return _BY_API.get((api_version, kind))


def supported_kinds() -> list[str]:
    """``apiVersion/Kind`` of every kind meshlet reads, sorted."""
    return sorted(f"{api_version}/{kind}" for api_version, kind in _BY_API)
