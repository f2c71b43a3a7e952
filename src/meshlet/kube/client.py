"""The Kubernetes API server through ``kubernetes-asyncio`` (async shell).

Why this client: ``kubernetes-asyncio`` is the maintained asyncio port of the
official Python client (the same kubeconfig and in-cluster loaders, exec and OIDC
credential plugins, TLS and token handling, regenerated for each Kubernetes
release). meshlet needs the raw JSON of lists and watch streams (its own reconcile
loop and caches read plain dicts, as the local store keeps them), and the generated
API classes give it either typed models or, with ``_preload_content=False``, the
response itself: ``KubeApi`` uses the client's ``call_api`` with that flag, so every
request goes through the library's configured transport and authentication, and only
the reading of the body is meshlet's. ``lightkube`` was the other candidate; it
always decodes into its own models and hides the list's ``resourceVersion`` and the
stream's bookmarks that the reconcile loop works from.

Errors: a response with a ``Status`` body becomes ``ApiStatusError`` (its code,
reason and message, as kubectl prints them); a connection that fails becomes
``ApiUnavailable``. Both are ``MeshletError``s.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiohttp
from kubernetes_asyncio import client as k8s_client
from kubernetes_asyncio import config as k8s_config

from meshlet.errors import ExitCode, MeshletError

__all__ = ["APPLY_PATCH", "ApiStatusError", "ApiUnavailable", "KubeApi", "connect"]

APPLY_PATCH = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"


class ApiStatusError(MeshletError):
    """The API server answered an error ``Status``."""

    def __init__(
        self, code: int, reason: str, message: str, *, retry_after: float | None = None
    ) -> None:
        super().__init__(f"Error from server ({reason}): {message}" if reason else message)
        self.code = code
        self.reason = reason
        self.server_message = message
        self.retry_after = retry_after
        if code == 404:
            self.exit_code = ExitCode.NOT_FOUND


class ApiUnavailable(MeshletError):
    """The API server cannot be reached."""

    exit_code = ExitCode.UNAVAILABLE


def _status_error(code: int, body: bytes, headers: Any) -> ApiStatusError:
    reason, message = "", body.decode("utf-8", "replace").strip() or f"HTTP {code}"
    with contextlib.suppress(ValueError, AttributeError):
        status = json.loads(body)
        if isinstance(status, dict) and status.get("kind") == "Status":
            reason = str(status.get("reason") or "")
            message = str(status.get("message") or message)
    retry_after: float | None = None
    with contextlib.suppress(TypeError, ValueError):
        retry_after = float(headers.get("Retry-After"))
    return ApiStatusError(code, reason, message, retry_after=retry_after)


class KubeApi:
    """Requests to one API server, answered as JSON values."""

    def __init__(self, api_client: k8s_client.ApiClient) -> None:
        self.api_client = api_client

    @property
    def host(self) -> str:
        return str(self.api_client.configuration.host)

    async def close(self) -> None:
        await self.api_client.close()

    async def __aenter__(self) -> KubeApi:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _send(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, Any]] = (),
        body: Any = None,
        content_type: str = "application/json",
        timeout: float | aiohttp.ClientTimeout | None = 30.0,
    ) -> aiohttp.ClientResponse:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        try:
            response = await self.api_client.call_api(
                path,
                method,
                query_params=list(query),
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=timeout,
            )
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            raise ApiUnavailable(
                f"the Kubernetes API server at {self.host} cannot be reached: {error}"
            ) from None
        return response  # type: ignore[no-any-return]

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, Any]] = (),
        body: Any = None,
        content_type: str = "application/json",
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """One request; the decoded body, or ``ApiStatusError``."""
        response = await self._send(
            method, path, query=query, body=body, content_type=content_type, timeout=timeout
        )
        try:
            data = await response.read()
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            raise ApiUnavailable(f"the Kubernetes API server stopped answering: {error}") from None
        finally:
            response.release()
        if not 200 <= response.status <= 299:
            raise _status_error(response.status, data, response.headers)
        try:
            value = json.loads(data) if data.strip() else {}
        except ValueError:
            raise ApiUnavailable(f"{method} {path}: the answer is not JSON") from None
        return value if isinstance(value, dict) else {"value": value}

    async def stream(
        self, path: str, *, query: Sequence[tuple[str, Any]] = (), read_timeout: float = 330.0
    ) -> AsyncIterator[bytes]:
        """The body of a long request (a watch), chunk by chunk, as it arrives."""
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30.0, sock_read=read_timeout)
        response = await self._send("GET", path, query=query, timeout=timeout)
        try:
            if not 200 <= response.status <= 299:
                raise _status_error(response.status, await response.read(), response.headers)
            try:
                async for chunk in response.content.iter_any():
                    yield chunk
            except (aiohttp.ClientError, OSError, TimeoutError) as error:
                raise ApiUnavailable(f"the watch of {path} broke off: {error}") from None
        finally:
            response.release()


async def connect(
    kubeconfig: str | None = None, *, in_cluster: bool = False, context: str | None = None
) -> KubeApi:
    """A client from a kubeconfig file (``KUBECONFIG`` rules) or the pod's own account."""
    configuration = k8s_client.Configuration()
    try:
        if in_cluster:
            k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        else:
            await k8s_config.load_kube_config(
                config_file=kubeconfig,
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
    except (k8s_config.ConfigException, OSError, ValueError, KeyError) as error:
        where = "the pod's service account" if in_cluster else (kubeconfig or "~/.kube/config")
        raise MeshletError(
            f"cannot load the Kubernetes configuration from {where}: {error}"
        ) from None
    return KubeApi(k8s_client.ApiClient(configuration))
