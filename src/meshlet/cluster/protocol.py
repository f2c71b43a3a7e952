"""The wire format between ``ClusterClient`` and the daemon, and the API's errors.

One connection carries one request and one response, each a JSON object on one line:

- request: ``{"op": "<operation>", "args": {...}}``
- response: ``{"ok": true, "result": ...}`` or
  ``{"ok": false, "error": {"reason": "NotFound", "message": "...", "exitCode": 4}}``

``ApiError.message`` is the whole line kubectl would print
(``Error from server (NotFound): pods "x" not found``), so a verb prints ``str(error)``
as it is. Bytes (the sidecar's admin answers) travel base64-encoded.

Pure: values in, values out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from meshlet.errors import ExitCode, MeshletError

__all__ = [
    "MAX_MESSAGE",
    "ApiError",
    "decode_error",
    "decode_line",
    "encode_error",
    "encode_line",
    "not_found",
]

MAX_MESSAGE = 64 * 1024 * 1024

_EXIT_CODES = {
    "NotFound": ExitCode.NOT_FOUND,
    "Unavailable": ExitCode.UNAVAILABLE,
    "BadRequest": ExitCode.USAGE,
}


class ApiError(MeshletError):
    """An error the API answered with: ``reason`` is Kubernetes' ``StatusReason``."""

    def __init__(self, reason: str, message: str, *, exit_code: ExitCode | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.exit_code = (
            exit_code if exit_code is not None else _EXIT_CODES.get(reason, ExitCode.ERROR)
        )


def not_found(plural: str, name: str) -> ApiError:
    """kubectl's line for a missing object: ``pods "x" not found``."""
    return ApiError("NotFound", f'Error from server (NotFound): {plural} "{name}" not found')


def encode_line(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode() + b"\n"


def decode_line(line: bytes) -> dict[str, Any]:
    value: Any = json.loads(line)
    if not isinstance(value, dict):
        raise ValueError("a message is a JSON object")
    return value


def encode_error(error: MeshletError) -> dict[str, Any]:
    reason = error.reason if isinstance(error, ApiError) else "Invalid"
    return {"reason": reason, "message": str(error), "exitCode": int(error.exit_code)}


def decode_error(raw: Mapping[str, Any]) -> ApiError:
    code = raw.get("exitCode")
    return ApiError(
        str(raw.get("reason") or "InternalError"),
        str(raw.get("message") or "the cluster answered with an error"),
        exit_code=ExitCode(int(code))
        if isinstance(code, int) and code in {int(c) for c in ExitCode}
        else None,
    )
