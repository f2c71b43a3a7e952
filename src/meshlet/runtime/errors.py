"""Errors of the node runtime, in meshlet's one exception tree."""

from __future__ import annotations

from meshlet.errors import ExitCode, MeshletError

__all__ = ["IpamError", "NodeRuntimeError"]


class NodeRuntimeError(MeshletError):
    """The machine cannot do what the local cluster needs (missing root or tools, a
    command that failed), with what to do about it."""

    exit_code = ExitCode.UNAVAILABLE


class IpamError(MeshletError):
    """An address cannot be given: the range is full, or the address asked for is
    outside the range or taken."""
