"""``python -m meshlet.proxy.worker``: one proxy worker process of a sidecar.

Theory of operation
-------------------
The agent (``meshlet.proxy.sidecar``) starts ``--concurrency`` of these, forked from
its zygote (``serve(options)``; ``python -m meshlet.proxy.worker`` runs one by hand).
Each is an xDS client of the agent's local xDS socket and an SDS client of its SDS
socket (gRPC spoken by ``grpc_stream``: no grpcio in a worker), and serves every
listener of the config itself: all workers bind the same addresses with
``SO_REUSEPORT``, so the kernel spreads connections over them.

Applying a config (``_apply``): the SDS subscription becomes the names the listeners
and clusters reference, the ``ProxyState`` takes the new resources, and each listener
is reconciled:

- a listener is bound only when every secret its filter chains name has arrived
  (Envoy's listener warming); until then it is *not ready* and says which secret it
  waits for, so a missing certificate never means serving without one;
- a listener whose filter chains changed keeps its socket; new connections use a new
  ``ListenerServer`` built from the new proto, open ones finish on the old (drain);
- a listener that is gone, or moved to another address, stops accepting; its open
  connections get ``--drain-seconds`` to finish, then are closed;
- a bind that fails (address in use, not permitted) is retried every second and
  reported as the reason.

The worker answers the agent on a unix socket (``--control-socket``): ``GET /status``
(JSON: pid, versions applied, listeners with readiness, reason and counters) and
``POST /drain_listeners``. SIGTERM drains: stop accepting, let open connections finish
for up to ``--drain-seconds``, exit 0. A worker whose agent dies exits too
(``PR_SET_PDEATHSIG`` plus a check of the parent's pid). A worker forked by the zygote
has the zygote as its parent until the zygote exits; then the agent (a child
subreaper, ``agent_pid``) is its parent, and only from then on does the agent's death
end it: the zygote's exit does not.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import logging
import os
import signal
import socket
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields

import uvloop
from envoy.config.listener.v3 import listener_pb2
from google.protobuf.message import Message

from meshlet.pilot.secrets import referenced_secret_names
from meshlet.proxy._http import HttpRequest, HttpResponse, serve_connection
from meshlet.proxy._logging import setup_logging
from meshlet.proxy._unix import UnixPath
from meshlet.proxy.access_log import AccessLogBuffer
from meshlet.proxy.config import CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE
from meshlet.proxy.limits import DEFAULT_MAX_CONNECTIONS, ConnectionGate, ListenerLimits
from meshlet.proxy.metrics import Workload
from meshlet.proxy.runtime import ListenerServer, ProxyState, bind_listener_socket
from meshlet.proxy.sds_client import SdsClient
from meshlet.proxy.xds_client import Backoff, XdsClient, unix_socket_connector

__all__ = ["Worker", "WorkerOptions", "listener_address", "main", "serve"]

log = logging.getLogger("meshlet.proxy.worker")

_PR_SET_PDEATHSIG = 1
_RETRY_SECONDS = 1.0


def listener_address(listener: listener_pb2.Listener) -> str:
    """``host:port`` of a listener (Envoy's stat prefix form is ``host_port``)."""
    address = listener.address.socket_address
    return f"{address.address or '0.0.0.0'}:{address.port_value}"


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    worker_id: int
    node_id: str
    xds_socket: str
    sds_socket: str
    control_socket: str
    drain_seconds: float = 5.0
    node_metadata: Mapping[str, str] = field(default_factory=dict)
    max_connections: int = DEFAULT_MAX_CONNECTIONS  # per listener
    access_log: str | None = "/dev/stdout"  # None: no access log
    agent_pid: int = 0  # 0: the parent this worker starts with is its agent

    def to_json(self) -> str:
        """These options as the agent hands them to the zygote (``from_json`` reads them)."""
        return json.dumps(
            {**{f.name: getattr(self, f.name) for f in fields(self)},
             "node_metadata": dict(self.node_metadata)},
            sort_keys=True,
        )  # fmt: skip

    @classmethod
    def from_json(cls, text: str) -> WorkerOptions:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("worker options must be a JSON object")
        access_log = data.get("access_log")
        return cls(
            worker_id=int(data["worker_id"]),
            node_id=str(data["node_id"]),
            xds_socket=str(data["xds_socket"]),
            sds_socket=str(data["sds_socket"]),
            control_socket=str(data["control_socket"]),
            drain_seconds=float(data.get("drain_seconds", 5.0)),
            node_metadata={str(k): str(v) for k, v in dict(data.get("node_metadata", {})).items()},
            max_connections=int(data.get("max_connections", DEFAULT_MAX_CONNECTIONS)),
            access_log=None if access_log is None else str(access_log),
            agent_pid=int(data.get("agent_pid", 0)),
        )


@dataclass
class _Listener:
    """One listener in this worker: its socket, the server for new connections, counters."""

    name: str
    address: str
    proto: listener_pb2.Listener
    sock: socket.socket | None = None
    server: ListenerServer | None = None
    accept_task: asyncio.Task[None] | None = None
    connections: set[asyncio.Task[None]] = field(default_factory=set)
    retired: Counter[str] = field(default_factory=Counter)  # counters of replaced servers
    reason: str = "not bound yet"
    gate: ConnectionGate | None = None  # the connection limit, kept across config changes

    @property
    def ready(self) -> bool:
        return self.sock is not None and not self.reason

    def counters(self) -> Counter[str]:
        total = Counter(self.retired)
        if self.server is not None:
            total.update(self.server.stats)
        return total


class Worker:
    """One worker process's proxy: config from xDS, secrets from SDS, listeners served."""

    def __init__(self, options: WorkerOptions) -> None:
        self.options = options
        self.sds = SdsClient(options.sds_socket, options.node_id)
        self._log_fd: int | None = None
        access_log = None
        if options.access_log:
            if options.access_log == "/dev/stdout":
                self._log_fd = sys.stdout.fileno()
            else:
                self._log_fd = os.open(
                    options.access_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644
                )
            access_log = AccessLogBuffer(self._write_log)
        self.state = ProxyState(
            self.sds,
            workload=Workload.from_node(options.node_id, options.node_metadata),
            access_log=access_log,
        )
        self.xds = XdsClient(
            f"unix:{options.xds_socket}",
            options.node_id,
            self._apply,
            metadata={"WORKER_ID": str(options.worker_id)},
            backoff=Backoff(initial=0.1, maximum=2.0, jitter=0.1),
            connect=unix_socket_connector(options.xds_socket),
        )
        self.listeners: dict[str, _Listener] = {}
        self.draining = False
        self._stop = asyncio.Event()
        self._background: set[asyncio.Task[None]] = set()
        self.sds.subscribe(lambda _name: self._reconcile())

    def _write_log(self, data: bytes) -> None:
        fd = self._log_fd
        if fd is None:
            return
        view = memoryview(data)
        with contextlib.suppress(BlockingIOError, OSError):
            while view:
                view = view[os.write(fd, view) :]

    def _server(self, entry: _Listener) -> ListenerServer:
        limits = ListenerLimits.of(entry.proto, max_connections=self.options.max_connections)
        if entry.gate is None:
            entry.gate = ConnectionGate(limits.max_connections)
        return ListenerServer(entry.proto, self.state, limits=limits, gate=entry.gate)

    # --- config --------------------------------------------------------------------------

    def _apply(
        self,
        listeners: dict[str, Message],
        clusters: dict[str, Message],
        routes: dict[str, Message],
        endpoints: dict[str, Message],
    ) -> None:
        self.sds.want(
            referenced_secret_names(
                [m for m in listeners.values() if isinstance(m, listener_pb2.Listener)],
                clusters.values(),
            )
        )
        self.state.replace(
            listeners=listeners.values(),
            clusters=clusters.values(),
            route_configs=routes.values(),
            endpoints=endpoints.values(),
        )
        log.info(
            "worker %d: config applied: %d listeners, %d clusters, %d routes",
            self.options.worker_id,
            len(listeners),
            len(clusters),
            len(routes),
        )
        self._reconcile()

    def _reconcile(self) -> None:
        config = self.state.current
        for name in [n for n in self.listeners if n not in config.listeners]:
            self._retire(self.listeners.pop(name))
        for name, proto in config.listeners.items():
            entry = self.listeners.get(name)
            address = listener_address(proto)
            if entry is not None and entry.address != address:
                self._retire(self.listeners.pop(name))
                entry = None
            if entry is None:
                entry = self.listeners[name] = _Listener(name, address, proto)
            if entry.server is not None and proto != entry.proto:
                entry.retired.update(entry.server.stats)
                entry.proto = proto
                entry.server = self._server(entry)
            entry.proto = proto
            self._activate(entry)

    def _activate(self, entry: _Listener) -> None:
        if self.draining:
            entry.reason = "draining"
            return
        missing = [
            name
            for name in referenced_secret_names([entry.proto], [])
            if self.sds.get(name) is None
        ]
        if missing and entry.sock is None:
            entry.reason = f"waiting for secret {', '.join(missing)}"
            return
        if entry.sock is None:
            try:
                entry.sock = bind_listener_socket(entry.proto)
            except OSError as exc:
                reason = f"cannot bind {entry.address}: {exc.strerror or exc}"
                if reason != entry.reason:
                    log.warning("listener %s: %s", entry.name, reason)
                entry.reason = reason
                return
            entry.server = self._server(entry)
            entry.accept_task = asyncio.get_running_loop().create_task(
                self._accept(entry), name=f"accept {entry.name}"
            )
            log.info(
                "worker %d: listener %s serving on %s",
                self.options.worker_id,
                entry.name,
                entry.address,
            )
        entry.reason = ""

    async def _accept(self, entry: _Listener) -> None:
        loop = asyncio.get_running_loop()
        assert entry.sock is not None
        listening = entry.sock
        while True:
            try:
                sock, peer = await loop.sock_accept(listening)
            except OSError as exc:
                log.warning("listener %s: accept failed: %s", entry.name, exc)
                await asyncio.sleep(0.05)
                continue
            server = entry.server
            if server is None:
                sock.close()
                continue
            task = loop.create_task(server.inspecting.handle(sock, peer))
            entry.connections.add(task)
            task.add_done_callback(entry.connections.discard)

    def _stop_accepting(self, entry: _Listener) -> None:
        if entry.accept_task is not None:
            entry.accept_task.cancel()
            entry.accept_task = None
        if entry.sock is not None:
            entry.sock.close()
            entry.sock = None

    def _retire(self, entry: _Listener) -> None:
        self._stop_accepting(entry)
        if entry.connections:
            task = asyncio.get_running_loop().create_task(self._drain(set(entry.connections)))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _drain(self, connections: set[asyncio.Task[None]]) -> None:
        if not connections:
            return
        _done, pending = await asyncio.wait(connections, timeout=self.options.drain_seconds)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=1.0)

    def drain_listeners(self) -> None:
        """Stop accepting on every listener (``/drain_listeners``); open connections go on."""
        self.draining = True
        for entry in self.listeners.values():
            self._stop_accepting(entry)
            entry.reason = "draining"
        log.info("worker %d: listeners drained", self.options.worker_id)

    # --- status --------------------------------------------------------------------------

    def status(self) -> dict[str, object]:
        return {
            "worker": self.options.worker_id,
            "pid": os.getpid(),
            "xds_connected": self.xds.connected,
            "sds_connected": self.sds.connected,
            "updates": self.xds.updates,
            "versions": {
                short: self.xds.version(type_url)
                for short, type_url in (
                    ("CDS", CLUSTER_TYPE),
                    ("EDS", ENDPOINT_TYPE),
                    ("LDS", LISTENER_TYPE),
                    ("RDS", ROUTE_TYPE),
                )
            },
            "last_nack": self.xds.last_nack,
            "draining": self.draining,
            "listeners": {
                name: {
                    "address": entry.address,
                    "ready": entry.ready,
                    "reason": entry.reason,
                    "active_connections": len(entry.connections),
                    "stats": dict(sorted(entry.counters().items())),
                }
                for name, entry in sorted(self.listeners.items())
            },
            "stats": dict(sorted(self.state.stats.items())),
            "istio_metrics": self.state.metrics.snapshot(),
            "secrets": sorted(name for name in self.sds.names if self.sds.get(name) is not None),
        }

    async def _control(self, request: HttpRequest) -> HttpResponse:
        if request.path == "/status":
            body = json.dumps(self.status(), sort_keys=True).encode()
            return HttpResponse(200, body, "application/json")
        if request.path == "/drain_listeners" and request.method == "POST":
            self.drain_listeners()
            return HttpResponse(200, b"OK\n")
        return HttpResponse(404, b"not found\n")

    # --- lifecycle -----------------------------------------------------------------------

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        control = UnixPath(self.options.control_socket)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.options.control_socket)
        server = await asyncio.start_unix_server(
            lambda r, w: serve_connection(self._control, r, w), path=control.address
        )
        control.close()
        sds_task = loop.create_task(self.sds.run(), name="sds")
        xds_task = loop.create_task(self.xds.run(), name="xds")
        retry_task = loop.create_task(self._retry(), name="retry")
        try:
            await self._stop.wait()
            log.info("worker %d: draining", self.options.worker_id)
            connections: set[asyncio.Task[None]] = set()
            for entry in self.listeners.values():
                self._stop_accepting(entry)
                connections |= entry.connections
            self.draining = True
            await self._drain(connections | set(self._background))
        finally:
            retry_task.cancel()
            await self.xds.stop()
            await self.sds.stop()
            for task in (xds_task, sds_task, retry_task):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    async with asyncio.timeout(2):
                        await task
            server.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.options.control_socket)
            if self.state.access_log is not None:
                self.state.access_log.flush()

    async def _retry(self) -> None:
        first_parent = os.getppid()
        agent = self.options.agent_pid or first_parent
        armed = first_parent == agent  # the death signal is set when the agent is the parent
        while True:
            await asyncio.sleep(_RETRY_SECONDS)
            if self.state.access_log is not None:
                self.state.access_log.flush()  # Envoy flushes its access logs every second
            parent = os.getppid()
            if parent == agent and not armed:  # the zygote is gone; the agent adopted us
                _die_with_parent()
                armed = True
                parent = os.getppid()  # the agent may have died before the signal was set
            if parent not in (agent, first_parent):
                log.warning("worker %d: the agent is gone; exiting", self.options.worker_id)
                self.request_stop()
                return
            if any(not entry.ready for entry in self.listeners.values()):
                self._reconcile()


def _die_with_parent() -> None:
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m meshlet.proxy.worker",
        description="One proxy worker of a meshlet sidecar (started by the agent).",
    )
    parser.add_argument("--worker-id", type=int, required=True)
    parser.add_argument("--node-id", required=True)
    parser.add_argument("--xds-socket", required=True)
    parser.add_argument("--sds-socket", required=True)
    parser.add_argument("--control-socket", required=True)
    parser.add_argument("--drain-seconds", type=float, default=5.0)
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--node-metadata", default="{}", help="the node's metadata (JSON)")
    parser.add_argument(
        "--max-connections", type=int, default=DEFAULT_MAX_CONNECTIONS,
        help="connections served at once per listener",
    )  # fmt: skip
    parser.add_argument(
        "--access-log", default="/dev/stdout", help="where access log lines go ('' for none)"
    )
    return parser


async def _serve(options: WorkerOptions) -> None:
    worker = Worker(options)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, worker.request_stop)
    await worker.run()


def _metadata(text: str) -> dict[str, str]:
    try:
        decoded = json.loads(text)
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in decoded.items()} if isinstance(decoded, dict) else {}


def serve(options: WorkerOptions, log_level: str = "info") -> int:
    """Run one worker until SIGTERM; its exit status. The zygote's children start here,
    with the options the agent sent (no command line to parse: building an argparse
    parser alone writes to about 2 MB of the pages a forked worker shares)."""
    if options.agent_pid in (0, os.getppid()):
        _die_with_parent()  # else once the agent adopts it (see ``Worker._retry``)
    setup_logging(log_level, prefix=f"envoy worker_{options.worker_id} ")
    uvloop.run(_serve(options))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    options = WorkerOptions(
        worker_id=args.worker_id,
        node_id=args.node_id,
        xds_socket=args.xds_socket,
        sds_socket=args.sds_socket,
        control_socket=args.control_socket,
        drain_seconds=args.drain_seconds,
        node_metadata=_metadata(args.node_metadata),
        max_connections=args.max_connections,
        access_log=args.access_log or None,
    )
    return serve(options, args.log_level)


if __name__ == "__main__":
    sys.exit(main())
