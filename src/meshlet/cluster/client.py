"""``ClusterClient``: the blocking API client every ``meshlet`` verb uses.

Theory of operation: each call opens the daemon's unix socket
(``MESHLET_HOME/meshlet.sock``), writes one request line, reads one response line and
closes (``meshlet.cluster.protocol``). A socket that is missing or refuses means the
daemon is not running: ``ApiError`` with ``ExitCode.UNAVAILABLE`` and the message
``meshlet is not running: run "meshlet install" first``. Any other answer the daemon
gives as an error is raised as the ``ApiError`` it describes.
"""

from __future__ import annotations

import base64
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from meshlet.cluster.home import ClusterHome
from meshlet.cluster.protocol import MAX_MESSAGE, ApiError, decode_error, decode_line, encode_line
from meshlet.errors import ExitCode

__all__ = ["NOT_RUNNING", "ClusterClient"]

NOT_RUNNING = 'meshlet is not running: run "meshlet install" first'
DEFAULT_TIMEOUT = 120.0


class ClusterClient:
    """The local cluster's API, one call per request."""

    def __init__(self, home: ClusterHome | Path | str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.home = home if isinstance(home, ClusterHome) else ClusterHome(Path(home))
        self.timeout = timeout

    # -- transport -----------------------------------------------------------------

    def call(self, op: str, **args: Any) -> Any:
        """Send one request; its result, or the ``ApiError`` the daemon answered."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            try:
                sock.connect(str(self.home.socket))
            except (FileNotFoundError, ConnectionRefusedError):
                raise ApiError("Unavailable", NOT_RUNNING, exit_code=ExitCode.UNAVAILABLE) from None
            except OSError as error:
                raise ApiError(
                    "Unavailable",
                    f"{NOT_RUNNING} ({self.home.socket}: {error.strerror})",
                    exit_code=ExitCode.UNAVAILABLE,
                ) from None
            try:
                sock.sendall(encode_line({"op": op, "args": args}))
                sock.shutdown(socket.SHUT_WR)
                line = self._read_line(sock)
            except ConnectionError:
                line = b""
        except TimeoutError:
            raise ApiError(
                "Unavailable",
                f"meshlet did not answer within {self.timeout:g}s",
                exit_code=ExitCode.UNAVAILABLE,
            ) from None
        finally:
            sock.close()
        if not line:
            raise ApiError(
                "Unavailable",
                "meshlet closed the connection without an answer (see its daemon.log)",
                exit_code=ExitCode.UNAVAILABLE,
            )
        response = decode_line(line)
        if not response.get("ok"):
            raise decode_error(response.get("error") or {})
        return response.get("result")

    @staticmethod
    def _read_line(sock: socket.socket) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = sock.recv(256 * 1024)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_MESSAGE:
                raise ApiError("InternalError", "the answer of meshlet is too large")
            if chunk.endswith(b"\n"):
                break
        return b"".join(chunks)

    # -- operations ------------------------------------------------------------------

    def ping(self) -> dict[str, Any]:
        """``{"ready": bool, "version": str}``."""
        result: dict[str, Any] = self.call("ping")
        return result

    def apply(
        self,
        objects: Sequence[Mapping[str, Any]],
        *,
        namespace: str,
        dry_run: bool = False,
        sources: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[dict[str, Any]]:
        """Create or update ``objects`` in one transaction (``kubectl apply``).

        ``sources`` (optional, one per object) say where each came from:
        ``{"file": "STDIN"|path, "line": int}``; messages name them as kubectl does.
        Each result: ``{"kind", "group", "name", "namespace", "action", "warnings"}``.
        """
        result: list[dict[str, Any]] = self.call(
            "apply",
            objects=list(objects),
            namespace=namespace,
            dry_run=dry_run,
            sources=list(sources) if sources is not None else None,
        )
        return result

    def create(
        self,
        objects: Sequence[Mapping[str, Any]],
        *,
        namespace: str,
        dry_run: bool = False,
        sources: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[dict[str, Any]]:
        """Create ``objects``; ``AlreadyExists`` (and nothing created) if one exists."""
        result: list[dict[str, Any]] = self.call(
            "create",
            objects=list(objects),
            namespace=namespace,
            dry_run=dry_run,
            sources=list(sources) if sources is not None else None,
        )
        return result

    def get(
        self,
        kind: str,
        *,
        namespace: str | None,
        names: Sequence[str] = (),
        selector: str | None = None,
    ) -> list[dict[str, Any]]:
        """Objects of ``kind`` (``group/Kind``: ``/Pod``, ``apps/Deployment``)."""
        result: list[dict[str, Any]] = self.call(
            "get", kind=kind, namespace=namespace, names=list(names), selector=selector
        )
        return result

    def delete(
        self, kind: str, *, namespace: str | None, names: Sequence[str]
    ) -> list[dict[str, Any]]:
        """Delete the named objects; each result ``{"kind", "group", "name", "namespace"}``."""
        result: list[dict[str, Any]] = self.call(
            "delete", kind=kind, namespace=namespace, names=list(names)
        )
        return result

    def label(
        self,
        kind: str,
        *,
        namespace: str | None,
        name: str,
        labels: Mapping[str, str | None],
        overwrite: bool,
    ) -> dict[str, Any]:
        """Set (or with ``None`` remove) labels; ``{"kind", "group", "name", "namespace",
        "action": "labeled"|"unchanged"}``."""
        result: dict[str, Any] = self.call(
            "label",
            kind=kind,
            namespace=namespace,
            name=name,
            labels=dict(labels),
            overwrite=overwrite,
        )
        return result

    def locate(self, namespace: str, pod: str, container: str | None = None) -> dict[str, Any]:
        """``{"pid", "container", "root"}`` of a running container (for exec and cp)."""
        result: dict[str, Any] = self.call(
            "locate", namespace=namespace, pod=pod, container=container
        )
        return result

    def logs_path(self, namespace: str, pod: str, container: str | None = None) -> str:
        """The file the container's stdout and stderr go to."""
        result: str = self.call("logs_path", namespace=namespace, pod=pod, container=container)
        return result

    def admin(self, namespace: str, pod: str, path: str) -> bytes:
        """The body of ``GET path`` on the pod's sidecar admin (127.0.0.1:15000)."""
        encoded: str = self.call("admin", namespace=namespace, pod=pod, path=path)
        return base64.b64decode(encoded)

    def proxy_status(self) -> bytes:
        """The control plane's ``istio.io/debug/syncz`` answer (a serialized
        ``DiscoveryResponse``), as ``istioctl proxy-status`` asks istiod for it."""
        return base64.b64decode(str(self.call("proxy_status")))

    def shutdown(self, *, purge: bool = False) -> dict[str, Any]:
        """Stop the daemon (with ``purge``: every pod first); answers before it exits."""
        result: dict[str, Any] = self.call("shutdown", purge=purge)
        return result
