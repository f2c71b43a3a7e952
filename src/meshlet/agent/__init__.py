"""The per-pod agent: workload key and certificate, rotation, file secrets and SDS.

``Agent`` and ``AgentConfig`` are loaded on first use, so that importing the pure
modules (``meshlet.agent.keys``, ``meshlet.agent.rotation``, ``meshlet.agent.secret``)
does not import gRPC.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from meshlet.agent.agent import SDS_SOCKET_PATH, Agent, AgentConfig

__all__ = ["SDS_SOCKET_PATH", "Agent", "AgentConfig"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from meshlet.agent import agent

        return getattr(agent, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
