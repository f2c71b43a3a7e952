"""The sidecar's operator ports: admin (127.0.0.1:15000), health (15021), Prometheus (15090).

Theory of operation
-------------------
The agent serves these; what they show comes from an ``AdminSource`` (the running
sidecar): the config it holds, the secrets, and each worker's status (fetched from
the worker when asked, so counters are current). Counters are merged as Envoy names
them: a listener's ``listener.<address>_<port>.<stat>`` is the sum over the workers,
and ``listener.<address>_<port>.worker_<N>.downstream_cx_total`` /
``…downstream_cx_active`` are each worker's own, as Envoy keeps them per worker thread.

Admin endpoints, as Envoy's: ``/config_dump`` (``mask``, ``resource``, ``name_regex``;
see ``config_dump``), ``/listeners`` and ``/clusters`` (text, or ``?format=json``),
``/server_info``, ``/ready``, ``/stats`` (``filter``, ``format=json``),
``/stats/prometheus``, and the POST-only ``/quitquitquit``, ``/drain_listeners``,
``/healthcheck/fail`` and ``/healthcheck/ok`` (a GET is refused with 405). Health:
``/healthz/ready`` is 200 once the first config is applied by every worker and every
listener is serving (it has its secrets and its address); before that 503 with the
reason. Prometheus: ``/stats/prometheus`` with Envoy's metric names for the counters
above and ``istio_build``, after Istio's standard metrics (``istio_requests_total`` …,
see ``metrics``) summed over the workers.

The rendering functions are pure (``render_stats``, ``render_prometheus``,
``render_listeners``, ``render_clusters``); ``OperatorServers`` owns the sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from google.protobuf import json_format

from meshlet import __version__
from meshlet.errors import MeshletError
from meshlet.proxy._http import HttpRequest, HttpResponse, serve_connection
from meshlet.proxy.config_dump import render_config_dump
from meshlet.proxy.metrics import merge_snapshots, render_istio_metrics

__all__ = [
    "AdminSource",
    "OperatorServers",
    "merge_worker_stats",
    "render_clusters",
    "render_listeners",
    "render_prometheus",
    "render_stats",
]

log = logging.getLogger("meshlet.proxy.admin")

_POST_ONLY = frozenset(
    {"/quitquitquit", "/drain_listeners", "/healthcheck/fail", "/healthcheck/ok"}
)
_GAUGE_SUFFIXES = ("_active", ".live", ".concurrency", ".uptime", "connected_state", "_warming")
_ENDPOINTS = (
    ("/clusters", "upstream cluster status"),
    ("/config_dump", "dump current Envoy configs"),
    ("/drain_listeners", "drain listeners (POST)"),
    ("/healthcheck/fail", "cause the server to fail health checks (POST)"),
    ("/healthcheck/ok", "cause the server to pass health checks (POST)"),
    ("/listeners", "print listener info"),
    ("/quitquitquit", "exit the server (POST)"),
    ("/ready", "print server state, return 200 if LIVE, otherwise return 503"),
    ("/server_info", "print server version/status information"),
    ("/stats", "print server stats"),
    ("/stats/prometheus", "print server stats in prometheus format"),
)


class AdminSource(Protocol):
    """What the operator ports read from and act on (the running sidecar)."""

    def config_dump(self) -> Any: ...

    def listeners(self) -> Sequence[listener_pb2.Listener]: ...

    def clusters(self) -> Sequence[cluster_pb2.Cluster]: ...

    def endpoints(self) -> Mapping[str, endpoint_pb2.ClusterLoadAssignment]: ...

    def server_info(self) -> Any: ...

    def agent_stats(self) -> dict[str, int]: ...

    async def worker_statuses(self) -> list[dict[str, Any]]: ...

    async def readiness(self) -> tuple[bool, str]: ...

    def server_state(self) -> str: ...

    def request_quit(self) -> None: ...

    async def drain_listeners(self) -> None: ...

    def set_health_failed(self, failed: bool) -> None: ...


# --- pure rendering --------------------------------------------------------------------


def _stat_address(address: str) -> str:
    host, _, port = address.rpartition(":")
    return f"{host}_{port}"


def merge_worker_stats(workers: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Envoy-named counters from the workers' statuses (summed, plus per-worker ones)."""
    merged: dict[str, int] = {}

    def add(name: str, value: int) -> None:
        merged[name] = merged.get(name, 0) + int(value)

    for status in workers:
        worker = status.get("worker")
        for entry in (status.get("listeners") or {}).values():
            prefix = f"listener.{_stat_address(entry['address'])}"
            for name, value in (entry.get("stats") or {}).items():
                add(f"{prefix}.{name}", value)
            active = int(entry.get("active_connections", 0))
            add(f"{prefix}.downstream_cx_active", active)
            total = int((entry.get("stats") or {}).get("downstream_cx_total", 0))
            add(f"{prefix}.worker_{worker}.downstream_cx_total", total)
            add(f"{prefix}.worker_{worker}.downstream_cx_active", active)
        for name, value in (status.get("stats") or {}).items():
            add(name, value)
    return merged


def render_stats(
    stats: Mapping[str, int], *, regex: str | None = None, as_json: bool = False
) -> bytes:
    """``/stats``: ``name: value`` lines, sorted (or Envoy's JSON form)."""
    pattern = re.compile(regex) if regex else None
    items = sorted((k, v) for k, v in stats.items() if pattern is None or pattern.search(k))
    if as_json:
        body = {"stats": [{"name": k, "value": v} for k, v in items]}
        return (json.dumps(body, indent=1) + "\n").encode()
    return "".join(f"{name}: {value}\n" for name, value in items).encode()


def _prometheus_name(stat: str) -> tuple[str, dict[str, str]]:
    labels: dict[str, str] = {}
    match = re.fullmatch(r"listener\.(.+?_\d+)\.(?:worker_(\d+)\.)?(.+)", stat)
    if match is not None:
        labels["envoy_listener_address"] = match.group(1)
        rest = match.group(3)
        if match.group(2) is not None:
            labels["envoy_worker_id"] = match.group(2)
            rest = "worker." + rest
        stat = "listener." + rest
    return "envoy_" + re.sub(r"[^a-zA-Z0-9_]", "_", stat), labels


def render_prometheus(stats: Mapping[str, int]) -> bytes:
    """Prometheus text format: Envoy's names, ``istio_build``."""
    families: dict[str, list[tuple[dict[str, str], int]]] = {}
    kinds: dict[str, str] = {}
    for stat, value in stats.items():
        name, labels = _prometheus_name(stat)
        families.setdefault(name, []).append((labels, value))
        kinds[name] = "gauge" if stat.endswith(_GAUGE_SUFFIXES) else "counter"
    lines = []
    for name in sorted(families):
        lines.append(f"# TYPE {name} {kinds[name]}")
        for labels, value in sorted(families[name], key=lambda item: sorted(item[0].items())):
            text = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
            lines.append(f"{name}{{{text}}} {value}" if text else f"{name} {value}")
    lines.append("# TYPE istio_build gauge")
    lines.append(f'istio_build{{component="proxy",tag="{__version__}"}} 1')
    return ("\n".join(lines) + "\n").encode()


def render_listeners(listeners: Sequence[listener_pb2.Listener], *, as_json: bool = False) -> bytes:
    """``/listeners``: ``name::address:port`` lines (or Envoy's ``ListenersProto`` JSON)."""
    ordered = sorted(listeners, key=lambda listener: listener.name)
    if as_json:
        body = {
            "listener_statuses": [
                {
                    "name": listener.name,
                    "local_address": json_format.MessageToDict(
                        listener.address, preserving_proto_field_name=True
                    ),
                }
                for listener in ordered
            ]
        }
        return (json.dumps(body, indent=1) + "\n").encode()
    lines = []
    for listener in ordered:
        address = listener.address.socket_address
        lines.append(f"{listener.name}::{address.address}:{address.port_value}\n")
    return "".join(lines).encode()


def _endpoint_addresses(assignment: endpoint_pb2.ClusterLoadAssignment) -> list[str]:
    addresses = []
    for locality in assignment.endpoints:
        for lb_endpoint in locality.lb_endpoints:
            address = lb_endpoint.endpoint.address
            if address.HasField("pipe"):
                addresses.append(f"unix://{address.pipe.path}")
            else:
                addresses.append(
                    f"{address.socket_address.address}:{address.socket_address.port_value}"
                )
    return addresses


def render_clusters(
    clusters: Sequence[cluster_pb2.Cluster],
    endpoints: Mapping[str, endpoint_pb2.ClusterLoadAssignment],
) -> bytes:
    """``/clusters`` in Envoy's text form: settings and hosts of each cluster."""
    lines = []
    for cluster in sorted(clusters, key=lambda c: c.name):
        name = cluster.name
        lines.append(f"{name}::observability_name::{cluster.alt_stat_name or name}")
        thresholds = list(cluster.circuit_breakers.thresholds)
        default = thresholds[0] if thresholds else None
        for field, fallback in (
            ("max_connections", 1024),
            ("max_pending_requests", 1024),
            ("max_requests", 1024),
            ("max_retries", 3),
        ):
            value = fallback
            if default is not None and default.HasField(field):
                value = getattr(default, field).value
            lines.append(f"{name}::default_priority::{field}::{value}")
        lines.append(f"{name}::added_via_api::true")
        if cluster.type == cluster_pb2.Cluster.EDS:
            assignment = endpoints.get(cluster.eds_cluster_config.service_name or name)
        else:
            assignment = cluster.load_assignment if cluster.HasField("load_assignment") else None
        for host in _endpoint_addresses(assignment) if assignment is not None else []:
            lines.append(f"{name}::{host}::health_flags::healthy")
            lines.append(f"{name}::{host}::weight::1")
    return "".join(line + "\n" for line in lines).encode()


# --- the servers -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


class OperatorServers:
    """The admin, health and Prometheus ports of one sidecar."""

    def __init__(
        self,
        source: AdminSource,
        *,
        admin: tuple[str, int] | None = ("127.0.0.1", 15000),
        status: tuple[str, int] | None = ("0.0.0.0", 15021),
        prometheus: tuple[str, int] | None = ("0.0.0.0", 15090),
    ) -> None:
        self.source = source
        self._addresses = {"admin": admin, "status": status, "prometheus": prometheus}
        self._servers: list[asyncio.Server] = []
        #: The bound addresses, by role (``admin``, ``status``, ``prometheus``).
        self.bound: dict[str, Address] = {}

    async def start(self) -> None:
        handlers: dict[str, Callable[[HttpRequest], Awaitable[HttpResponse]]] = {
            "admin": self._admin,
            "status": self._status,
            "prometheus": self._prometheus,
        }
        try:
            for role, address in self._addresses.items():
                if address is None:
                    continue
                handler = handlers[role]
                try:
                    server = await asyncio.start_server(
                        lambda r, w, h=handler: serve_connection(h, r, w),  # type: ignore[misc]
                        address[0],
                        address[1],
                        reuse_address=True,
                    )
                except OSError as exc:
                    reason = os.strerror(exc.errno) if exc.errno else str(exc)
                    raise MeshletError(
                        f"cannot listen on {address[0]}:{address[1]} for the {role} port: {reason}"
                    ) from None
                self._servers.append(server)
                host, port = server.sockets[0].getsockname()[:2]
                self.bound[role] = Address(host, port)
                log.info("%s listening on %s:%d", role, host, port)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        servers, self._servers = self._servers, []
        for server in servers:
            server.close()
        for server in servers:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1):
                    await server.wait_closed()

    async def _stats(self) -> dict[str, int]:
        return (await self._collect())[0]

    async def _collect(self) -> tuple[dict[str, int], list[dict[str, object]]]:
        """Envoy's counters and Istio's metrics, summed over the workers."""
        statuses = await self.source.worker_statuses()
        stats = dict(self.source.agent_stats())
        for name, value in merge_worker_stats(statuses).items():
            stats[name] = stats.get(name, 0) + value
        series = merge_snapshots(status.get("istio_metrics") or [] for status in statuses)
        return stats, series

    async def _admin(self, request: HttpRequest) -> HttpResponse:
        path = request.path
        if path in _POST_ONLY and request.method != "POST":
            return HttpResponse(405, b"This endpoint requires POST\n")
        if path == "/config_dump":
            status, body = render_config_dump(
                self.source.config_dump(),
                mask=request.param("mask"),
                resource=request.param("resource"),
                name_regex=request.param("name_regex"),
            )
            kind = "application/json" if status == 200 else "text/plain; charset=UTF-8"
            return HttpResponse(status, body, kind)
        if path == "/listeners":
            as_json = request.param("format") == "json"
            body = render_listeners(self.source.listeners(), as_json=as_json)
            return HttpResponse(200, body, "application/json" if as_json else "text/plain")
        if path == "/clusters":
            return HttpResponse(
                200, render_clusters(self.source.clusters(), self.source.endpoints())
            )
        if path == "/server_info":
            body = json_format.MessageToJson(
                self.source.server_info(),
                preserving_proto_field_name=True,
                indent=1,
                always_print_fields_with_no_presence=True,
            )
            return HttpResponse(200, (body + "\n").encode(), "application/json")
        if path == "/ready":
            ready, _reason = await self.source.readiness()
            state = self.source.server_state()
            return HttpResponse(200 if ready else 503, f"{state}\n".encode())
        if path == "/stats":
            try:
                body = render_stats(
                    await self._stats(),
                    regex=request.param("filter"),
                    as_json=request.param("format") == "json",
                )
            except re.error as exc:
                return HttpResponse(400, f"Invalid regex: {exc}\n".encode())
            return HttpResponse(200, body)
        if path == "/stats/prometheus":
            return await self._prometheus(request)
        if path == "/quitquitquit":
            asyncio.get_running_loop().call_later(0.05, self.source.request_quit)
            return HttpResponse(200, b"OK\n")
        if path == "/drain_listeners":
            await self.source.drain_listeners()
            return HttpResponse(200, b"OK\n")
        if path in ("/healthcheck/fail", "/healthcheck/ok"):
            self.source.set_health_failed(path.endswith("fail"))
            return HttpResponse(200, b"OK\n")
        listing = "".join(f"  {name}: {help_text}\n" for name, help_text in _ENDPOINTS)
        return HttpResponse(404, f"invalid path. admin commands are:\n{listing}".encode())

    async def _status(self, request: HttpRequest) -> HttpResponse:
        if request.path != "/healthz/ready":
            return HttpResponse(404, b"not found\n")
        ready, reason = await self.source.readiness()
        if ready:
            return HttpResponse(200, b"")
        return HttpResponse(503, f"not ready: {reason}\n".encode())

    async def _prometheus(self, request: HttpRequest) -> HttpResponse:
        if request.path != "/stats/prometheus":
            return HttpResponse(404, b"not found\n")
        stats, series = await self._collect()
        body = render_istio_metrics(series).encode() + render_prometheus(stats)
        return HttpResponse(200, body, "text/plain; version=0.0.4")
