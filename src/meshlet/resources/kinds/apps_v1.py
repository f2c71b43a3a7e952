from __future__ import annotations

from meshlet.resources.kinds._registry import KindInfo

__all__ = ["KINDS"]

KINDS: tuple[KindInfo, ...] = ()
