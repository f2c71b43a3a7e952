"""``python -m meshlet.proxy.sidecar``: a sidecar as processes, the agent and its workers.

Theory of operation
-------------------
This process is the agent, as Istio's pilot-agent is beside Envoy. It holds the
connections that leave the pod — the control plane's ADS (``--xds-address``:
plaintext on 15010; on 15012 TLS with the mesh root, proving the pod's identity with
its workload certificate once it has one, else with its token as ``authorization:
Bearer``) and the CA (``--ca-address``, through ``meshlet.agent.Agent``) — and serves on
unix sockets in the pod:

- SDS (the agent's server, ``./var/run/secrets/workload-spiffe-uds/socket``):
  ``default``, ``ROOTCA``, ``file-cert:…``, ``file-root:…``;
- a local xDS endpoint (``XDS`` beside it, ``local_xds``) serving the last config
  the agent accepted from the control plane. The agent validates what it receives
  (NACKing what the proxy cannot serve, keeping the last good config) and the workers
  get only that.

It starts ``--concurrency`` workers (``meshlet.proxy.worker``), forked from a zygote
(``meshlet.proxy.zygote``) that ``run_sidecar_process`` forks from this process before
its event loop and servers start, so agent, zygote and workers share the pages of
the modules they all import (a zygote that dies is replaced by a new interpreter: the
running agent may have gRPC threads and is never forked). The two sockets are served by
``grpc_server`` and each worker is a client of them by ``grpc_stream`` (gRPC on ``h2``,
no grpcio); only a pod's agent loads grpcio, as the client of the control plane and the
CA. Each worker serves every listener with ``SO_REUSEPORT``. A worker that dies is
started again (back-off from 0.5 s to 10 s). The node id is Istio's ``sidecar~<pod-ip>~<pod>.<ns>~<ns>.svc.cluster.local``.

Operators reach the agent: admin on 127.0.0.1:15000, ``/healthz/ready`` on 15021,
Prometheus on 15090 (``admin``). SIGTERM or SIGINT (or ``POST /quitquitquit``) drains:
the workers stop accepting and get ``--drain-seconds`` for open connections, then
everything stops and the process exits 0.

Standalone mode (``meshlet sidecar -f``) is the same processes with no control plane
and no CA: the config is built from files (``standalone``) and handed to the local
xDS endpoint once, and the SDS server serves file secrets only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import uvloop
from envoy.admin.v3 import server_info_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from google.protobuf import duration_pb2
from google.protobuf.message import Message

from meshlet import __version__
from meshlet.agent.agent import Agent, AgentConfig
from meshlet.agent.arguments import add_agent_arguments, agent_config, missing_flags
from meshlet.agent.cache import SecretCache
from meshlet.agent.sds import SDSServer, to_envoy_secret
from meshlet.agent.secret import SecretSource, source_of
from meshlet.errors import MeshletError
from meshlet.pilot.secrets import referenced_secret_names
from meshlet.proxy._http import http_get
from meshlet.proxy._logging import setup_logging
from meshlet.proxy._unix import UnixPath
from meshlet.proxy._workers import ForkedWorker, WorkerStarter
from meshlet.proxy.admin import OperatorServers
from meshlet.proxy.config import CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE
from meshlet.proxy.config_dump import Dumped, SecretState, build_config_dump, static_pipe_cluster
from meshlet.proxy.grpc_stream import Status
from meshlet.proxy.limits import DEFAULT_MAX_CONNECTIONS
from meshlet.proxy.local_xds import LocalXdsServer
from meshlet.proxy.standalone import StandaloneConfig
from meshlet.proxy.worker import WorkerOptions
from meshlet.proxy.xds_client import StreamAuth, StreamAuthSource, XdsClient

__all__ = ["Sidecar", "SidecarOptions", "main", "node_id", "run_sidecar", "run_sidecar_process"]

log = logging.getLogger("meshlet.proxy.sidecar")

XDS_SOCKET_NAME = "XDS"
SDS_SOCKET_NAME = "socket"


def node_id(pod_ip: str, pod: str, namespace: str) -> str:
    """Istio's node id of a sidecar."""
    return f"sidecar~{pod_ip}~{pod}.{namespace}~{namespace}.svc.cluster.local"


@dataclass(frozen=True, slots=True)
class SidecarOptions:
    """How to run one sidecar.

    In a pod: ``agent`` (identity, CA, SDS socket) and ``xds_address``. Standalone:
    ``standalone`` (the config built from files) and neither of those.
    """

    node_id: str
    concurrency: int = 2
    agent: AgentConfig | None = None
    xds_address: str | None = None
    standalone: StandaloneConfig | None = None
    run_dir: str | None = None  # where the XDS, worker and (standalone) SDS sockets live
    admin: tuple[str, int] | None = ("127.0.0.1", 15000)
    status: tuple[str, int] | None = ("0.0.0.0", 15021)
    prometheus: tuple[str, int] | None = ("0.0.0.0", 15090)
    drain_seconds: float = 5.0
    log_level: str = "info"
    metadata: Mapping[str, str] = field(default_factory=dict)
    access_log: str | None = "/dev/stdout"  # where the workers write it; None: no log
    max_connections: int = DEFAULT_MAX_CONNECTIONS  # per listener, in each worker


@dataclass
class _WorkerProcess:
    worker_id: int
    control: str
    process: ForkedWorker | None = None
    started: float = 0.0
    restarts: int = 0


@dataclass
class _Seen:
    digest: bytes
    version: str
    when: datetime


class Sidecar:
    """The agent: upstream connections, local sockets, workers, operator ports."""

    def __init__(self, options: SidecarOptions, *, starter: WorkerStarter | None = None) -> None:
        if options.concurrency < 1:
            raise MeshletError("--concurrency must be at least 1", field="concurrency")
        if (options.standalone is None) == (options.xds_address is None):
            raise MeshletError("a sidecar needs either an xDS address or a standalone config")
        self.options = options
        self._temp_dir: str | None = None
        self.run_dir = options.run_dir or ""
        self.agent: Agent | None = None
        self.cache: SecretCache | None = None
        self._sds: SDSServer | None = None
        self.sds_socket = ""
        self.relay: LocalXdsServer | None = None
        self.xds: XdsClient | None = None
        self.servers: OperatorServers | None = None
        self.workers: list[_WorkerProcess] = []
        self._starter = starter or WorkerStarter()
        self._stop = asyncio.Event()
        self.draining = False
        self._health_failed = False
        self._ready = False
        self._started_wall = datetime.now(UTC)
        self._started = time.monotonic()
        self._resources: dict[str, dict[str, _Seen]] = {}
        self._secrets: dict[str, _Seen] = {}
        self._secret_versions = itertools.count(1)
        self._xds_root = b""  # the mesh root the ADS channel trusts until the agent has one
        self._xds_presented_certificate = False
        self.node = base_pb2.Node(
            id=options.node_id, cluster="", user_agent_name="meshlet",
            user_agent_version=__version__,
        )  # fmt: skip
        for key, value in sorted(options.metadata.items()):
            self.node.metadata.fields[key].string_value = value

    # --- lifecycle -----------------------------------------------------------------------

    def request_quit(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Start everything, serve until asked to stop, drain, stop everything."""
        try:
            await self._start()
            await self._stop.wait()
        finally:
            await self._shutdown()

    async def _start(self) -> None:
        options = self.options
        if not self.run_dir:
            if options.agent is not None:
                self.run_dir = os.path.dirname(options.agent.sds_socket_path)
            else:
                self._temp_dir = self.run_dir = tempfile.mkdtemp(prefix="meshlet-sidecar-")
        os.makedirs(self.run_dir, mode=0o750, exist_ok=True)
        if options.agent is not None:
            self.agent = Agent(options.agent)
            await self.agent.start()
            self.cache = self.agent.cache
            self.sds_socket = self.agent.sds_socket_path
        else:
            self.cache = SecretCache()
            self.sds_socket = os.path.join(self.run_dir, SDS_SOCKET_NAME)
            self._sds = SDSServer(self.cache, self.sds_socket)
            try:
                await self._sds.start()
            except (OSError, RuntimeError) as exc:
                raise MeshletError(f"cannot serve SDS on {self.sds_socket}: {exc}") from None
        self.relay = LocalXdsServer(os.path.join(self.run_dir, XDS_SOCKET_NAME))
        try:
            await self.relay.start()
        except (OSError, RuntimeError) as exc:
            raise MeshletError(f"cannot serve xDS to the workers: {exc}") from None
        if options.standalone is not None:
            config = options.standalone
            self._set_config(
                {listener.name: listener for listener in config.listeners},
                {cluster.name: cluster for cluster in config.clusters},
                {},
                {},
            )
        else:
            assert options.xds_address is not None
            self.xds = XdsClient(
                options.xds_address,
                options.node_id,
                self._set_config,
                metadata=dict(options.metadata),
                auth=self._xds_auth_source(),
            )
            self._spawn(self.xds.run(), "upstream xds")
        self.servers = OperatorServers(
            self, admin=options.admin, status=options.status, prometheus=options.prometheus
        )
        await self.servers.start()
        for index in range(options.concurrency):
            worker = _WorkerProcess(index, os.path.join(self.run_dir, f"worker-{index}.sock"))
            self.workers.append(worker)
            self._spawn(self._supervise(worker), f"worker {index}")
        log.info(
            "sidecar %s started: %d workers, admin %s",
            options.node_id,
            options.concurrency,
            self.servers.bound.get("admin", "off"),
        )

    def _xds_auth_source(self) -> StreamAuthSource | None:
        """How the ADS streams prove the pod's identity (None: plaintext, not 15012)."""
        address = self.options.xds_address or ""
        agent = self.options.agent
        if not address.endswith(":15012") or agent is None:
            return None
        try:
            with open(agent.root_cert_path, "rb") as file:
                self._xds_root = file.read()
        except OSError as exc:
            raise MeshletError(
                f"cannot read the mesh root certificate {agent.root_cert_path}: "
                f"{exc.strerror or exc}"
            ) from None
        return self._xds_stream_auth

    def _xds_stream_auth(self, ended_with: Status | None) -> StreamAuth:
        """TLS with the mesh root; the workload certificate while it is valid (mutual TLS),
        else the pod's token. A stream refused with the certificate retries with the token."""
        import grpc  # pod mode only: the standalone agent never loads grpcio

        workload = self.agent.workload if self.agent is not None else None
        root = workload.root().trusted_ca if workload is not None else self._xds_root
        item = workload.certificate() if workload is not None else None
        refused = ended_with is Status.UNAUTHENTICATED and self._xds_presented_certificate
        if workload is not None and item is not None and not refused:
            not_after = workload.status().not_after
            if not_after is None or datetime.now(UTC) < not_after:
                self._xds_presented_certificate = True
                return StreamAuth(
                    grpc.ssl_channel_credentials(
                        root_certificates=root,
                        private_key=item.private_key,
                        certificate_chain=item.certificate_chain,
                    )
                )
        self._xds_presented_certificate = False
        token = self._read_token()
        metadata = (("authorization", f"Bearer {token}"),) if token else ()
        return StreamAuth(grpc.ssl_channel_credentials(root_certificates=root), metadata)

    def _read_token(self) -> str | None:
        """The pod's token, read afresh (it may have been rotated)."""
        path = self.options.agent.token_path if self.options.agent is not None else None
        if path is None:
            return None
        try:
            with open(path, encoding="utf-8") as file:
                return file.read().strip() or None
        except OSError as exc:
            log.warning("cannot read the pod token %s: %s", path, exc.strerror or exc)
            return None

    _tasks: set[asyncio.Task[None]]

    def _spawn(self, coroutine: Any, name: str) -> None:
        if not hasattr(self, "_tasks"):
            self._tasks = set()
        task = asyncio.get_running_loop().create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        """A background task ended: an error it ended with is logged, never lost."""
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("%s ended with an error: %r", task.get_name(), error, exc_info=error)

    async def _shutdown(self) -> None:
        self.draining = True
        log.info("sidecar draining (up to %.1fs)", self.options.drain_seconds)
        for worker in self.workers:
            process = worker.process
            if process is not None and process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
        for worker in self.workers:
            process = worker.process
            if process is None or process.returncode is not None:
                continue
            try:
                async with asyncio.timeout(self.options.drain_seconds + 3):
                    await process.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        await self._starter.aclose()
        for task in list(getattr(self, "_tasks", ())):
            task.cancel()
        if self.xds is not None:
            await self.xds.stop()
        for task in list(getattr(self, "_tasks", ())):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                async with asyncio.timeout(2):
                    await task
        if self.servers is not None:
            await self.servers.stop()
        if self.relay is not None:
            await self.relay.stop()
        if self.agent is not None:
            await self.agent.stop()
        if self._sds is not None:
            await self._sds.stop()
            if self.cache is not None:
                await self.cache.aclose()
        for worker in self.workers:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(worker.control)
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
        log.info("sidecar stopped")

    # --- workers -------------------------------------------------------------------------

    async def _supervise(self, worker: _WorkerProcess) -> None:
        delay = 0.5
        while not self.draining:
            options = WorkerOptions(
                worker_id=worker.worker_id,
                node_id=self.options.node_id,
                xds_socket=os.path.join(self.run_dir, XDS_SOCKET_NAME),
                sds_socket=self.sds_socket,
                control_socket=worker.control,
                drain_seconds=self.options.drain_seconds,
                node_metadata=self._worker_metadata(),
                max_connections=self.options.max_connections,
                access_log=self.options.access_log,
                agent_pid=os.getpid(),
            )
            worker.started = time.monotonic()
            # Forked from the zygote, which imported the data path and no gRPC: the
            # workers share its pages; this gRPC process never forks.
            try:
                worker.process = await self._starter.spawn(
                    options=options.to_json(), log_level=self.options.log_level
                )
            except Exception as exc:  # the zygote could not start it: try again, later
                unexpected = not isinstance(exc, OSError | TimeoutError)
                log.warning(
                    "worker %d could not be started: %r", worker.worker_id, exc,
                    exc_info=exc if unexpected else None,
                )  # fmt: skip
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            log.info("worker %d started (pid %d)", worker.worker_id, worker.process.pid)
            if all(w.process is not None and w.process.returncode is None for w in self.workers):
                try:
                    await self._starter.release()  # its pages would be one more copy
                except Exception as exc:  # the zygote stays: only memory is lost
                    log.warning("the zygote could not be released: %r", exc, exc_info=exc)
            code = await worker.process.wait()
            if self.draining:
                return
            worker.restarts += 1
            if time.monotonic() - worker.started > 10:
                delay = 0.5
            log.warning(
                "worker %d (pid %d) exited with %s; starting it again in %.1fs",
                worker.worker_id,
                worker.process.pid,
                code,
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    def _worker_metadata(self) -> dict[str, str]:
        """The node metadata the workers label their metrics with."""
        metadata = dict(self.options.metadata)
        standalone = self.options.standalone
        if standalone is not None:
            if standalone.workload_name:
                metadata.setdefault("WORKLOAD_NAME", standalone.workload_name)
            if standalone.labels:
                metadata.setdefault("LABELS", json.dumps(dict(standalone.labels), sort_keys=True))
        return metadata

    async def worker_statuses(self) -> list[dict[str, Any]]:
        async def one(worker: _WorkerProcess) -> dict[str, Any]:
            process = worker.process
            if process is None or process.returncode is not None:
                return {"worker": worker.worker_id, "error": "not running"}
            path = UnixPath(worker.control)
            try:
                status, body = await http_get(path.address, "/status", timeout=2.0)
                if status != 200:
                    raise OSError(f"status {status}")
                result: dict[str, Any] = json.loads(body)
                return result
            except (OSError, TimeoutError, ValueError) as exc:
                return {"worker": worker.worker_id, "error": f"not answering: {exc}"}
            finally:
                path.close()

        return list(await asyncio.gather(*(one(w) for w in self.workers)))

    async def drain_listeners(self) -> None:
        for worker in self.workers:
            path = UnixPath(worker.control)
            try:
                await http_get(path.address, "/drain_listeners", method="POST", timeout=2.0)
            except (OSError, TimeoutError) as exc:
                log.warning("worker %d: drain_listeners failed: %s", worker.worker_id, exc)
            finally:
                path.close()

    # --- config --------------------------------------------------------------------------

    def _set_config(
        self,
        listeners: Mapping[str, Message],
        clusters: Mapping[str, Message],
        routes: Mapping[str, Message],
        endpoints: Mapping[str, Message],
    ) -> None:
        assert self.relay is not None
        self.relay.set_config(listeners, clusters, routes, endpoints)
        now = datetime.now(UTC)
        for type_url, resources in (
            (LISTENER_TYPE, listeners),
            (CLUSTER_TYPE, clusters),
            (ROUTE_TYPE, routes),
            (ENDPOINT_TYPE, endpoints),
        ):
            seen = self._resources.setdefault(type_url, {})
            version = self.relay.version(type_url)
            fresh: dict[str, _Seen] = {}
            for name, message in resources.items():
                digest = message.SerializeToString(deterministic=True)
                old = seen.get(name)
                fresh[name] = (
                    old if old is not None and old.digest == digest else _Seen(digest, version, now)
                )
            self._resources[type_url] = fresh
        log.info(
            "config %d: %d listeners, %d clusters, %d routes, %d endpoints",
            self.relay.generation,
            len(listeners),
            len(clusters),
            len(routes),
            len(endpoints),
        )

    def _messages(self, type_url: str) -> dict[str, Message]:
        return {} if self.relay is None else self.relay.messages(type_url)

    def listeners(self) -> list[listener_pb2.Listener]:
        return [
            m
            for m in self._messages(LISTENER_TYPE).values()
            if isinstance(m, listener_pb2.Listener)
        ]

    def clusters(self) -> list[cluster_pb2.Cluster]:
        return [
            m for m in self._messages(CLUSTER_TYPE).values() if isinstance(m, cluster_pb2.Cluster)
        ]

    def endpoints(self) -> dict[str, endpoint_pb2.ClusterLoadAssignment]:
        return {
            n: m
            for n, m in self._messages(ENDPOINT_TYPE).items()
            if isinstance(m, endpoint_pb2.ClusterLoadAssignment)
        }

    # --- secrets -------------------------------------------------------------------------

    def secret_names(self) -> tuple[str, ...]:
        return referenced_secret_names(self.listeners(), self.clusters())

    def secret_problem(self, name: str) -> str:
        """Why the agent has no secret ``name`` (yet)."""
        if self.cache is not None:
            status = self.cache.status(name)
            if status is not None and status.last_error:
                return status.last_error
        source = source_of(name)
        if source in (SecretSource.FILE_CERT, SecretSource.FILE_ROOT):
            return "the files have not been read yet"
        if self.agent is None or self.agent.workload is None:
            return "no mesh CA: this sidecar has no workload certificate"
        return "waiting for the workload certificate from the CA"

    def _secret_states(self) -> list[SecretState]:
        states = []
        now = datetime.now(UTC)
        for name in self.secret_names():
            item = self.cache.get(name) if self.cache is not None else None
            if item is None:
                states.append(SecretState(name, None, error=self.secret_problem(name)))
                continue
            secret = to_envoy_secret(item)
            digest = secret.SerializeToString(deterministic=True)
            seen = self._secrets.get(name)
            if seen is None or seen.digest != digest:
                version = f"{now.strftime('%Y-%m-%dT%H:%M:%SZ')}/{next(self._secret_versions)}"
                seen = self._secrets[name] = _Seen(digest, version, now)
            states.append(SecretState(name, secret, seen.version, seen.when))
        return states

    # --- AdminSource ---------------------------------------------------------------------

    def config_dump(self) -> Any:
        def dumped(type_url: str) -> list[Dumped]:
            seen = self._resources.get(type_url, {})
            return [
                Dumped(message, seen[name].version, seen[name].when)
                for name, message in self._messages(type_url).items()
                if name in seen
            ]

        relay = self.relay
        return build_config_dump(
            node=self.node,
            bootstrap_time=self._started_wall,
            static_clusters=[
                static_pipe_cluster("sds-grpc", self.sds_socket),
                static_pipe_cluster("xds-grpc", os.path.join(self.run_dir, XDS_SOCKET_NAME)),
            ],
            clusters=dumped(CLUSTER_TYPE),
            cluster_version=relay.version(CLUSTER_TYPE) if relay else "",
            listeners=dumped(LISTENER_TYPE),
            warming_listeners=self._warming,
            listener_version=relay.version(LISTENER_TYPE) if relay else "",
            routes=dumped(ROUTE_TYPE),
            secrets=self._secret_states(),
        )

    _warming: frozenset[str] = frozenset()

    def agent_stats(self) -> dict[str, int]:
        stats = {
            "server.concurrency": self.options.concurrency,
            "server.live": 1 if self.server_state() == "LIVE" else 0,
            "server.uptime": int(time.monotonic() - self._started),
            "server.worker_restarts": sum(w.restarts for w in self.workers),
        }
        if self.xds is not None:
            stats["control_plane.connected_state"] = 1 if self.xds.connected else 0
            stats["control_plane.update_success"] = self.xds.acks
            stats["control_plane.update_rejected"] = self.xds.nacks
        return stats

    async def readiness(self) -> tuple[bool, str]:
        ready, reason, warming = await self._readiness()
        self._ready = ready
        self._warming = frozenset(warming)
        return ready, reason

    async def _readiness(self) -> tuple[bool, str, list[str]]:
        if self.draining:
            return False, "the sidecar is draining", []
        if self._health_failed:
            return False, "health checks failed (/healthcheck/fail)", []
        if self.relay is None or not self.relay.has_config:
            return False, "config not received from XDS server", []
        lds, cds = self.relay.version(LISTENER_TYPE), self.relay.version(CLUSTER_TYPE)
        problems: list[str] = []
        warming: set[str] = set()
        for status in await self.worker_statuses():
            worker = status.get("worker")
            if "error" in status:
                problems.append(f"worker {worker} is {status['error']}")
                continue
            versions = status.get("versions") or {}
            if versions.get("LDS") != lds or versions.get("CDS") != cds:
                problems.append(f"worker {worker} has not applied the current config yet")
                continue
            for name, entry in sorted((status.get("listeners") or {}).items()):
                if entry.get("ready"):
                    continue
                warming.add(name)
                reason = str(entry.get("reason") or "not serving")
                if reason.startswith("waiting for secret "):
                    secrets = reason.removeprefix("waiting for secret ").split(", ")
                    reason = "; ".join(f"secret {s}: {self.secret_problem(s)}" for s in secrets)
                problems.append(f"listener {name} is not ready: {reason}")
        if problems:
            return False, "; ".join(dict.fromkeys(problems)), sorted(warming)
        return True, "", []

    def server_state(self) -> str:
        if self.draining:
            return "DRAINING"
        if self.relay is None or not self.relay.has_config:
            return "PRE_INITIALIZING"
        return "LIVE" if self._ready else "INITIALIZING"

    def server_info(self) -> Any:
        states = {
            "LIVE": server_info_pb2.ServerInfo.LIVE,
            "DRAINING": server_info_pb2.ServerInfo.DRAINING,
            "PRE_INITIALIZING": server_info_pb2.ServerInfo.PRE_INITIALIZING,
            "INITIALIZING": server_info_pb2.ServerInfo.INITIALIZING,
        }
        uptime = duration_pb2.Duration(seconds=int(time.monotonic() - self._started))
        info = server_info_pb2.ServerInfo(
            version=f"meshlet/{__version__}/Clean/RELEASE/OpenSSL",
            state=states[self.server_state()],
            uptime_current_epoch=uptime,
            uptime_all_epochs=uptime,
            hot_restart_version="disabled",
            node=self.node,
        )
        info.command_line_options.concurrency = self.options.concurrency
        info.command_line_options.service_node = self.options.node_id
        info.command_line_options.drain_time.FromSeconds(int(self.options.drain_seconds))
        return info

    def set_health_failed(self, failed: bool) -> None:
        self._health_failed = failed


async def run_sidecar(options: SidecarOptions, *, starter: WorkerStarter | None = None) -> None:
    """Run a sidecar until SIGTERM/SIGINT (or ``/quitquitquit``); raises ``MeshletError``."""
    sidecar = Sidecar(options, starter=starter)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, sidecar.request_quit)
    try:
        await sidecar.run()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


def run_sidecar_process(options: SidecarOptions, *, starter: WorkerStarter | None = None) -> None:
    """Run a sidecar as this process's main work: fork the zygote while the process is
    still one thread with no event loop (unless ``starter`` has one already), then
    ``run_sidecar`` on uvloop. Raises ``MeshletError``."""
    if starter is None:
        starter = WorkerStarter(adopt_workers=True)
        try:
            starter.fork_zygote()
        except (RuntimeError, OSError) as exc:  # the first worker will start a new zygote
            log.warning("zygote not forked from the agent: %s", exc)
    uvloop.run(run_sidecar(options, starter=starter))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m meshlet.proxy.sidecar",
        description="Run a pod's sidecar: the agent and its proxy workers.",
    )
    add_agent_arguments(parser, os.environ, root_dir_help="the pod's root (sockets are under it)")
    parser.add_argument("--pod-ip", default=os.environ.get("INSTANCE_IP"))
    parser.add_argument("--xds-address", required=True, help="host:port of the control plane")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--run-dir", help="where the local xDS and worker sockets go")
    parser.add_argument("--admin-port", type=int, default=15000)
    parser.add_argument("--status-port", type=int, default=15021)
    parser.add_argument("--prometheus-port", type=int, default=15090)
    parser.add_argument("--drain-seconds", type=float, default=5.0)
    parser.add_argument("--log-level", default="info")
    return parser


def _pod_metadata(args: argparse.Namespace) -> dict[str, str]:
    """The node metadata of a pod's sidecar; the workload name and labels come from
    ``ISTIO_META_WORKLOAD_NAME`` and ``ISTIO_METAJSON_LABELS`` when the pod sets them."""
    metadata = {
        "CLUSTER_ID": "Kubernetes",
        "INSTANCE_IPS": args.pod_ip,
        "ISTIO_VERSION": __version__,
        "NAMESPACE": args.namespace,
        "POD_NAME": args.pod_name,
        "SERVICE_ACCOUNT": args.service_account,
    }
    workload = os.environ.get("ISTIO_META_WORKLOAD_NAME")
    if workload:
        metadata["WORKLOAD_NAME"] = workload
    labels = os.environ.get("ISTIO_METAJSON_LABELS")
    if labels:
        metadata["LABELS"] = labels
    return metadata


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    missing = missing_flags(args, also=[("--pod-ip", "pod_ip")])
    if missing:
        print(f"meshlet sidecar: missing {', '.join(missing)}", file=sys.stderr)
        return 2
    setup_logging(args.log_level)
    options = SidecarOptions(
        node_id=node_id(args.pod_ip, args.pod_name, args.namespace),
        concurrency=args.concurrency,
        agent=agent_config(args),
        xds_address=args.xds_address,
        run_dir=args.run_dir,
        admin=("127.0.0.1", args.admin_port),
        status=("0.0.0.0", args.status_port),
        prometheus=("0.0.0.0", args.prometheus_port),
        drain_seconds=args.drain_seconds,
        log_level=args.log_level,
        metadata=_pod_metadata(args),
    )
    try:
        run_sidecar_process(options)
    except MeshletError as exc:
        print(f"meshlet sidecar: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
