"""The daemon: the API server, the controllers and the control plane in one process.

Theory of operation
-------------------
``meshlet install`` starts ``python -m meshlet.daemon --home DIR`` inside the node's
network namespace, so every listener it opens is there: the mesh CA and the
authenticated ADS service on ``<node>:15012`` (sidecars), the ADS server in plaintext
on ``<node>:15010`` (the node's tools), the cluster DNS on the DNS
Service's address, port 53. The API is a unix socket, ``DIR/meshlet.sock`` (mode 0600),
one JSON request and one JSON answer per connection (``meshlet.cluster.protocol``).

The daemon owns every write to the store (``api``); each write wakes the controller
loop, which reads the store's change log (``events_since``) and reconciles:

- namespaces: each holds the ``default`` ServiceAccount and the ``istio-ca-root-cert``
  ConfigMap with the mesh root;
- Deployments: pods created and deleted as ``controllers.deployments`` decides (new
  pods pass admission, so injection applies), and the Deployments' status;
- pods: each stored pod is made on the machine (``kubelet.sync_pod``, in a worker
  thread) and each pod on the machine that is no longer stored is stopped; a Secret
  or ConfigMap that changed is rewritten into the volumes of the pods that use it;
  every pod's status follows what its supervisor reports;
- Services: kube-proxy's NAT in the node namespace and the DNS table, whenever
  Services or pods change;
- the mesh: pilot's snapshot, rebuilt 100 ms after the last relevant change and
  handed to the ADS server.

The loop also runs at least twice a second, which picks up what supervisors report
and retries what could not be done yet (a pod waiting for its Secret).

SIGTERM stops the daemon and leaves the pods running under their supervisors: a
daemon started again re-adopts them (their network namespaces, directories and
supervisors), so nothing a write reported as done is lost. ``shutdown`` with
``purge`` (``meshlet uninstall --purge``) stops every pod first.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import random
import signal
import socket
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from meshlet import __version__
from meshlet.ca.server import CAServer
from meshlet.ca.store import CAStore
from meshlet.cluster.home import ClusterHome, node_config_from_json
from meshlet.cluster.protocol import ApiError, decode_line, encode_error, encode_line
from meshlet.daemon.api import Api
from meshlet.daemon.controllers.deployments import orphaned_pods, reconcile_deployment
from meshlet.daemon.controllers.namespaces import namespace_objects
from meshlet.daemon.controllers.podstatus import pod_status
from meshlet.daemon.controllers.services import dns_table, service_rules
from meshlet.daemon.controlplane import (
    CA_PORT,
    SNAPSHOT_KINDS,
    XDS_PORT,
    istiod_service,
    snapshot_from_objects,
)
from meshlet.daemon.images import ImageEntry, builtin_catalog, parse_user_catalog
from meshlet.daemon.injection import InjectionSettings
from meshlet.daemon.kubelet import Kubelet, supervisor_pid
from meshlet.errors import MeshletError
from meshlet.resources.mesh import MeshSettings
from meshlet.runtime.dns import ClusterDns, NameTable
from meshlet.runtime.ipam import pod_allocator
from meshlet.runtime.iptables import apply_service_rules
from meshlet.runtime.netns import open_socket_in_netns
from meshlet.runtime.network import NodeNetwork
from meshlet.runtime.services import render_service_tables
from meshlet.store import Store
from meshlet.store.sqlite import Expired
from meshlet.xds.status import syncz_response

__all__ = ["Daemon", "load_settings"]

log = logging.getLogger("meshlet.daemon")

TICK = 0.5
RETRY_AFTER = 2.0
SNAPSHOT_DEBOUNCE = 0.1
MAX_REQUEST = 64 * 1024 * 1024
ADMIN_PORT = 15000


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def load_settings(home: ClusterHome) -> MeshSettings:
    """The mesh settings ``install --set`` saved (``settings.json``: ``{"set": [...]}``)."""
    try:
        raw = json.loads(home.settings_file.read_text())
    except (OSError, ValueError):
        return MeshSettings()
    flags = raw.get("set") if isinstance(raw, dict) else None
    return MeshSettings().with_set_flags([str(f) for f in flags or []])


class Daemon:
    def __init__(self, home: ClusterHome) -> None:
        self.home = home
        self.config = node_config_from_json(home.node_file.read_text())
        self.settings = load_settings(home)
        self.store = Store(str(home.database))
        self.network = NodeNetwork(self.config)
        self.rng = random.Random()
        self.api = Api(self.store, self.config, injection=self._injection, on_write=self._wake)
        self.ready = False
        self.wake = asyncio.Event()
        self.stopping = asyncio.Event()
        self.purge = False
        self.seen_version = 0
        self.pod_tasks: dict[str, asyncio.Task[None]] = {}
        self.started: set[str] = set()
        self.waiting: dict[str, tuple[str, str]] = {}
        self.last_attempt: dict[str, float] = {}
        self.stopping_pods: set[str] = set()
        self.rules_text: str | None = None
        self.names = NameTable()
        self.snapshot_due: float | None = None
        self.root_pem = ""
        self.kubelet: Kubelet | None = None
        self.xds: Any = None
        self.ca: CAServer | None = None
        self.dns: ClusterDns | None = None
        self.group: asyncio.TaskGroup | None = None
        self._catalog: dict[str, ImageEntry] = {}
        self._catalog_mtime: float | None = None

    # -- settings and catalog ------------------------------------------------------------

    def _injection(self) -> InjectionSettings:
        return InjectionSettings(
            trust_domain=self.settings.trust_domain, root_namespace=self.settings.root_namespace
        )

    def catalog(self) -> dict[str, ImageEntry]:
        try:
            mtime: float | None = self.home.images_file.stat().st_mtime
        except OSError:
            mtime = None
        if mtime != self._catalog_mtime or not self._catalog:
            catalog = builtin_catalog(sys.executable)
            if mtime is not None:
                try:
                    catalog.update(
                        parse_user_catalog(
                            self.home.images_file.read_text(), str(self.home.images_file)
                        )
                    )
                except (MeshletError, OSError) as error:
                    log.error("%s", error)
            self._catalog, self._catalog_mtime = catalog, mtime
        return self._catalog

    def _wake(self) -> None:
        self.wake.set()

    # -- lifecycle -----------------------------------------------------------------------

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stopping.set)
        self.home.pid_file.write_text(f"{os.getpid()}\n")
        now = datetime.now(UTC)
        ca_store = CAStore(self.home.ca_dir, trust_domain=self.settings.trust_domain)
        signer = ca_store.load_signer(now=now)
        token_key = ca_store.load_token_key()
        self.root_pem = signer.root_pem.decode()
        self.kubelet = Kubelet(
            self.home,
            self.network,
            token_key=token_key,
            catalog=self.catalog,
            trust_domain=self.settings.trust_domain,
        )
        existing = await asyncio.to_thread(self.network.pods)
        self.network.pod_ips = pod_allocator(self.config, {p.ip: p.pod_id for p in existing})
        self._bootstrap_objects()

        node_ip = str(self.config.node_ip)
        self.dns = ClusterDns(self.names, zone=self.config.cluster_domain)
        await self.dns.start(self.config.dns_ip, 53)
        self.xds = self._make_xds()
        self.ca = CAServer(
            signer,
            token_key,
            trust_domain=self.settings.trust_domain,
            services=[self.xds.add_authenticated_service] if self.xds is not None else [],
        )
        await self.ca.start(node_ip, CA_PORT)
        if self.xds is not None:
            await self.xds.start(node_ip, XDS_PORT)

        with contextlib.suppress(FileNotFoundError):
            self.home.socket.unlink()
        old_umask = os.umask(0o177)
        try:
            server = await asyncio.start_unix_server(
                self._serve, path=str(self.home.socket), limit=MAX_REQUEST
            )
        finally:
            os.umask(old_umask)
        self.home.socket.chmod(0o600)
        try:
            async with asyncio.TaskGroup() as group:
                self.group = group
                await self._reconcile(first=True)
                self.ready = True
                log.info("meshlet %s is ready (node %s)", __version__, node_ip)
                group.create_task(self._controller_loop())
                await self.stopping.wait()
                raise _Stop
        except* _Stop:
            pass
        finally:
            server.close()
            await server.wait_closed()
            await self._shutdown()

    def _make_xds(self) -> Any:
        try:
            from meshlet.xds.server import AdsServer
        except ImportError as error:  # the ADS server is an optional part of a build
            log.error("the xDS server is not available: %s", error)
            return None
        return AdsServer()

    async def _shutdown(self) -> None:
        for task in list(self.pod_tasks.values()):
            task.cancel()
        if self.purge and self.kubelet is not None:
            kubelet = self.kubelet
            known = kubelet.known_pods()
            await asyncio.gather(
                *(
                    asyncio.to_thread(kubelet.stop_pod, uid, grace=self._grace(uid))
                    for uid in known
                ),
                return_exceptions=True,
            )
        if self.xds is not None:
            await self.xds.stop()
        if self.ca is not None:
            await self.ca.stop()
        if self.dns is not None:
            await self.dns.aclose()
        self.store.close()
        for path in (self.home.socket, self.home.pid_file):
            with contextlib.suppress(OSError):
                path.unlink()
        log.info("meshlet stopped%s", " (pods removed)" if self.purge else "")

    def _grace(self, uid: str) -> float:
        try:
            plan = json.loads((self.home.pod_dir(uid) / "plan.json").read_text())
            return float(plan.get("grace", 30))
        except (OSError, ValueError, TypeError):
            return 30.0

    def _bootstrap_objects(self) -> None:
        """The namespaces and the ``istiod`` Service every cluster has."""
        wanted: list[dict[str, Any]] = [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}},
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": self.settings.root_namespace},
            },
        ]
        for body in wanted:
            if self.store.get(_key("/Namespace", "", body["metadata"]["name"])) is None:
                self.api.apply([body], namespace="default")
        if self.store.get(_key("/Service", self.settings.root_namespace, "istiod")) is None:
            self.api.apply(
                [istiod_service(self.settings.root_namespace)],
                namespace=self.settings.root_namespace,
            )

    # -- the API ---------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                async with asyncio.timeout(30):
                    line = await reader.readline()
                request = decode_line(line)
                result = await self._dispatch(str(request.get("op")), request.get("args") or {})
                response: dict[str, Any] = {"ok": True, "result": result}
            except MeshletError as error:
                response = {"ok": False, "error": encode_error(error)}
            except (ValueError, TypeError, KeyError) as error:
                response = {
                    "ok": False,
                    "error": {
                        "reason": "BadRequest",
                        "message": f"error: bad request: {error}",
                        "exitCode": 1,
                    },
                }
            except Exception as error:
                log.exception("request failed")
                response = {
                    "ok": False,
                    "error": {
                        "reason": "InternalError",
                        "message": f"Error from server (InternalError): an error on the server: {error}",
                        "exitCode": 1,
                    },
                }
            writer.write(encode_line(response))
            await writer.drain()
        except (ConnectionError, TimeoutError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _dispatch(self, op: str, args: Mapping[str, Any]) -> Any:
        if op == "ping":
            return {"ready": self.ready, "version": __version__}
        if not self.ready and op != "shutdown":
            raise ApiError("Unavailable", "meshlet is starting: try again in a moment")
        api = self.api
        match op:
            case "apply":
                return api.apply(
                    args["objects"],
                    args.get("namespace") or "default",
                    bool(args.get("dry_run")),
                    args.get("sources"),
                )
            case "create":
                return api.create(
                    args["objects"],
                    args.get("namespace") or "default",
                    bool(args.get("dry_run")),
                    args.get("sources"),
                )
            case "get":
                return api.get(
                    args["kind"],
                    args.get("namespace"),
                    args.get("names") or (),
                    args.get("selector"),
                )
            case "delete":
                return api.delete(args["kind"], args.get("namespace"), args.get("names") or ())
            case "label":
                return api.label(
                    args["kind"],
                    args.get("namespace"),
                    args["name"],
                    args.get("labels") or {},
                    bool(args.get("overwrite")),
                )
            case "locate":
                return self._locate(str(args["namespace"]), str(args["pod"]), args.get("container"))
            case "logs_path":
                return self._logs_path(
                    str(args["namespace"]), str(args["pod"]), args.get("container")
                )
            case "admin":
                body = await self._admin(
                    str(args["namespace"]), str(args["pod"]), str(args["path"])
                )
                return base64.b64encode(body).decode()
            case "proxy_status":
                if self.xds is None:
                    raise ApiError("Unavailable", "error: the xDS server is not running")
                answer = syncz_response(
                    self.xds.status(),
                    control_plane_id=self.xds.control_plane_id,
                    version=__version__,
                    nonce="local",
                )
                return base64.b64encode(answer.SerializeToString()).decode()
            case "shutdown":
                self.purge = bool(args.get("purge"))
                asyncio.get_running_loop().call_later(0.05, self.stopping.set)
                return {"stopping": True, "purge": self.purge}
        raise ApiError("BadRequest", f"error: unknown operation {op!r}")

    def _pod(self, namespace: str, name: str) -> Mapping[str, Any]:
        stored = self.store.get(_key("/Pod", namespace, name))
        if stored is None:
            raise ApiError("NotFound", f'Error from server (NotFound): pods "{name}" not found')
        return stored.body

    @staticmethod
    def _container_name(pod: Mapping[str, Any], container: str | None) -> str:
        names = [str(c.get("name")) for c in (pod.get("spec") or {}).get("containers") or []]
        if container is None:
            default = ((pod.get("metadata") or {}).get("annotations") or {}).get(
                "kubectl.kubernetes.io/default-container"
            )
            return default if default in names else names[0]
        if container not in names:
            raise ApiError(
                "BadRequest",
                f"error: container {container} is not valid for pod {(pod.get('metadata') or {}).get('name')}",
            )
        return container

    def _locate(self, namespace: str, name: str, container: str | None) -> dict[str, Any]:
        pod = self._pod(namespace, name)
        chosen = self._container_name(pod, container)
        assert self.kubelet is not None
        pid = self.kubelet.container_pid(str(pod["metadata"]["uid"]), chosen)
        if pid is None:
            raise ApiError(
                "BadRequest",
                f'error: unable to upgrade connection: container not found ("{chosen}")',
            )
        return {"pid": pid, "container": chosen, "root": f"/proc/{pid}/root"}

    def _logs_path(self, namespace: str, name: str, container: str | None) -> str:
        pod = self._pod(namespace, name)
        chosen = self._container_name(pod, container)
        return str(self.home.pod_dir(str(pod["metadata"]["uid"])) / "logs" / f"{chosen}.log")

    async def _admin(self, namespace: str, name: str, path: str) -> bytes:
        pod = self._pod(namespace, name)
        netns = self.network.config.pod_netns(str(pod["metadata"]["uid"]))
        sock = await asyncio.to_thread(
            open_socket_in_netns, Path("/run/netns") / netns, socket.AF_INET, socket.SOCK_STREAM
        )
        try:
            async with asyncio.timeout(10):
                await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", ADMIN_PORT))
                reader, writer = await asyncio.open_connection(sock=sock)
                request = f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{ADMIN_PORT}\r\nConnection: close\r\n\r\n"
                writer.write(request.encode())
                await writer.drain()
                raw = await reader.read()
                writer.close()
        except (OSError, TimeoutError) as error:
            raise ApiError(
                "ServiceUnavailable",
                f"error: failed to reach the sidecar admin of {name}.{namespace}: {error}",
            ) from None
        head, _, body = raw.partition(b"\r\n\r\n")
        first = head.split(b"\r\n", 1)[0].decode(errors="replace")
        if first.split()[1:2] != ["200"]:
            raise ApiError("InternalError", f"error: the sidecar admin answered {first}")
        return body

    # -- the controllers ------------------------------------------------------------------

    async def _controller_loop(self) -> None:
        while not self.stopping.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(TICK):
                    await self.wake.wait()
            self.wake.clear()
            try:
                await self._reconcile()
            except MeshletError as error:
                log.error("reconcile: %s", error)
            except Exception:
                log.exception("reconcile failed")

    def _changes(self, first: bool) -> set[str]:
        if first:
            self.seen_version = self.store.revision
            return {"*"}
        try:
            events = self.store.events_since(self.seen_version)
        except Expired:
            self.seen_version = self.store.revision
            return {"*"}
        if events:
            self.seen_version = events[-1].resource_version
        return {event.key.kind for event in events}

    async def _reconcile(self, first: bool = False) -> None:
        changed = self._changes(first)
        everything = "*" in changed
        if (
            everything
            or "/Namespace" in changed
            or "/ConfigMap" in changed
            or "/ServiceAccount" in changed
        ):
            self._reconcile_namespaces()
        self._reconcile_deployments()
        await self._reconcile_pods(
            volumes_changed=everything or bool({"/Secret", "/ConfigMap"} & changed)
        )
        self._update_pod_statuses()
        changed |= self._changes(False)
        if everything or {"/Service", "/Pod"} & changed:
            await self._reconcile_services()
        if everything or SNAPSHOT_KINDS & changed:
            self.snapshot_due = time.monotonic() + SNAPSHOT_DEBOUNCE
            loop = asyncio.get_running_loop()
            loop.call_later(SNAPSHOT_DEBOUNCE + 0.01, self.wake.set)
        if self.snapshot_due is not None and time.monotonic() >= self.snapshot_due:
            self.snapshot_due = None
            self._push_snapshot()

    def _reconcile_namespaces(self) -> None:
        writes = []
        for namespace in self.store.list_kind("/Namespace"):
            name = namespace.key.name
            configmap = self.store.get(_key("/ConfigMap", name, "istio-ca-root-cert"))
            account = self.store.get(_key("/ServiceAccount", name, "default"))
            writes += namespace_objects(
                name,
                root_pem=self.root_pem,
                configmap=configmap.body if configmap else None,
                service_account=account.body if account else None,
            )
        if writes:
            self.store.apply(writes)

    def _reconcile_deployments(self) -> None:
        now = _stamp(datetime.now(UTC))
        pods_by_ns: dict[str, list[Mapping[str, Any]]] = {}
        for pod in self.store.list_kind("/Pod"):
            pods_by_ns.setdefault(pod.key.namespace, []).append(pod.body)
        deployments_by_ns: dict[str, list[Mapping[str, Any]]] = {}
        for deployment in self.store.list_kind("apps/Deployment"):
            ns = deployment.key.namespace
            deployments_by_ns.setdefault(ns, []).append(deployment.body)
            plan = reconcile_deployment(
                deployment.body, pods_by_ns.get(ns, []), now=now, rng=self.rng
            )
            if plan.create:
                for problem in self.api.create_pods(plan.create, ns):
                    log.error("deployment %s/%s: %s", ns, deployment.key.name, problem)
            if plan.delete:
                self.store.delete([_key("/Pod", ns, name) for name in plan.delete])
            if plan.status != (deployment.body.get("status") or {}):
                self.store.update_status(deployment.key, plan.status)
        for ns, pods in pods_by_ns.items():
            orphans = orphaned_pods(deployments_by_ns.get(ns, []), pods)
            if orphans:
                self.store.delete([_key("/Pod", ns, name) for name in orphans])

    def _objects_of(self, kind: str, namespace: str) -> dict[str, Mapping[str, Any]]:
        return {o.key.name: o.body for o in self.store.list_kind(kind, namespace)}

    async def _reconcile_pods(self, *, volumes_changed: bool) -> None:
        assert self.kubelet is not None and self.group is not None
        kubelet = self.kubelet
        stored = {str(p.body["metadata"]["uid"]): p.body for p in self.store.list_kind("/Pod")}
        now = time.monotonic()
        for uid, body in stored.items():
            if uid in self.pod_tasks or uid in self.stopping_pods:
                continue
            if uid in self.started and supervisor_pid(kubelet.pod_dir(uid)) is None:
                log.warning("the supervisor of pod %s is gone; starting it again", uid)
                self.started.discard(uid)
            if uid in self.started:
                if volumes_changed:
                    ns = str(body["metadata"]["namespace"])
                    secrets, configmaps = (
                        self._objects_of("/Secret", ns),
                        self._objects_of("/ConfigMap", ns),
                    )
                    self._spawn(uid, self._refresh(body, secrets, configmaps))
                continue
            if now - self.last_attempt.get(uid, 0.0) < RETRY_AFTER and not volumes_changed:
                continue
            self.last_attempt[uid] = now
            ns = str(body["metadata"]["namespace"])
            secrets, configmaps = (
                self._objects_of("/Secret", ns),
                self._objects_of("/ConfigMap", ns),
            )
            self._spawn(uid, self._sync(uid, body, secrets, configmaps))
        for uid in kubelet.known_pods():
            if uid not in stored and uid not in self.stopping_pods and uid not in self.pod_tasks:
                self.stopping_pods.add(uid)
                self._spawn(uid, self._stop(uid))

    def _spawn(self, uid: str, work: Any) -> None:
        assert self.group is not None
        task = self.group.create_task(work)
        self.pod_tasks[uid] = task

        def done(_: asyncio.Task[None]) -> None:
            if self.pod_tasks.get(uid) is task:
                del self.pod_tasks[uid]
            self.wake.set()

        task.add_done_callback(done)

    async def _sync(
        self,
        uid: str,
        body: Mapping[str, Any],
        secrets: Mapping[str, Any],
        configmaps: Mapping[str, Any],
    ) -> None:
        assert self.kubelet is not None
        try:
            result = await asyncio.to_thread(self.kubelet.sync_pod, body, secrets, configmaps)
        except asyncio.CancelledError:
            raise
        except MeshletError as error:
            log.error(
                "pod %s/%s: %s", body["metadata"]["namespace"], body["metadata"]["name"], error
            )
            self.waiting[uid] = ("CreateContainerError", error.message)
            return
        except Exception as error:
            log.exception("pod %s/%s", body["metadata"]["namespace"], body["metadata"]["name"])
            self.waiting[uid] = ("CreateContainerError", str(error))
            return
        if result.volume_errors:
            self.waiting[uid] = ("ContainerCreating", "; ".join(result.volume_errors))
            return
        self.waiting.pop(uid, None)
        self.started.add(uid)

    async def _refresh(
        self, body: Mapping[str, Any], secrets: Mapping[str, Any], configmaps: Mapping[str, Any]
    ) -> None:
        assert self.kubelet is not None
        try:
            await asyncio.to_thread(self.kubelet.refresh_volumes, body, secrets, configmaps)
        except (OSError, MeshletError, ValueError) as error:
            log.error("volumes of %s: %s", body["metadata"]["name"], error)

    async def _stop(self, uid: str) -> None:
        assert self.kubelet is not None
        try:
            await asyncio.to_thread(self.kubelet.stop_pod, uid, grace=self._grace(uid))
        except (OSError, MeshletError) as error:
            log.error("stopping pod %s: %s", uid, error)
        finally:
            self.stopping_pods.discard(uid)
            self.started.discard(uid)
            self.waiting.pop(uid, None)
            self.last_attempt.pop(uid, None)

    def _update_pod_statuses(self) -> None:
        assert self.kubelet is not None
        now = _stamp(datetime.now(UTC))
        for pod in self.store.list_kind("/Pod"):
            uid = str(pod.body["metadata"]["uid"])
            waiting = self.waiting.get(uid)
            if uid not in self.started and waiting is None:
                waiting = ("ContainerCreating", "")
            observed = self.kubelet.observe(
                pod.body, waiting_reason=waiting if uid not in self.started else None
            )
            status = pod_status(pod.body, observed, now=now)
            if status != (pod.body.get("status") or {}):
                self.store.update_status(pod.key, status)

    async def _reconcile_services(self) -> None:
        services = [s.body for s in self.store.list_kind("/Service")]
        pods = [p.body for p in self.store.list_kind("/Pod")]
        manual = {(self.settings.root_namespace, "istiod"): [self.config.node_ip]}
        rules = service_rules(services, pods, manual)
        text = render_service_tables(rules)
        self.names.replace(dns_table(services, pods, zone=self.config.cluster_domain))
        if text != self.rules_text:
            await asyncio.to_thread(apply_service_rules, self.network.node_netns_path, rules)
            self.rules_text = text

    def _push_snapshot(self) -> None:
        if self.xds is None:
            return
        objects = {kind: [o.body for o in self.store.list_kind(kind)] for kind in SNAPSHOT_KINDS}
        try:
            snapshot = snapshot_from_objects(objects, self.settings)
        except MeshletError as error:
            log.error("the mesh config was not rebuilt: %s", error)
            return
        self.xds.update_snapshot(snapshot)


class _Stop(Exception):
    pass


def _key(kind: str, namespace: str, name: str) -> Any:
    from meshlet.store import ObjectKey

    return ObjectKey(kind, namespace, name)
