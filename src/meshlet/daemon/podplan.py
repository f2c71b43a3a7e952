"""What the node does for one pod: its volumes' files and its containers' programs.

Theory of operation: ``plan_pod(pod, context)`` reads the pod as stored and returns

- each volume's content: a Secret's or ConfigMap's keys (all, or the ``items`` asked
  for, at their ``path``), a projected volume (service-account tokens, Secrets,
  ConfigMaps and downward-API files merged), a downward-API volume (``labels`` and
  ``annotations`` in the kubelet's ``key="value"`` lines), or an ``emptyDir``; a
  missing Secret or ConfigMap is an error unless the volume says ``optional: true``
  (then it is empty);
- each container's program (``meshlet.daemon.images``) with its environment (values,
  the downward API's ``fieldRef``, ``secretKeyRef``/``configMapKeyRef``, ``envFrom``),
  its volume mounts (``subPath`` included), its group (``runAsGroup``), and its
  readiness probe; or the reason it cannot start, as the kubelet words it
  (``ErrImagePull``, ``CreateContainerConfigError``).

The sidecar (``istio-proxy``) is marked so that its supervisor starts it first and the
other containers only once it is ready. Paths are under the pod's directory: volumes
in ``volumes/<name>``. Pure: the Secrets, ConfigMaps and the pod's token are given.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from meshlet.daemon.images import ImageEntry, container_argv
from meshlet.daemon.injection import PROXY_CONTAINER
from meshlet.runtime.containerspec import Mount

__all__ = [
    "ContainerPlan",
    "PodContext",
    "PodPlan",
    "Probe",
    "VolumeContent",
    "plan_pod",
]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True, slots=True)
class PodContext:
    """What the node knows that the pod object does not say."""

    pod_dir: str
    pod_ip: str
    host_ip: str
    catalog: Mapping[str, ImageEntry]
    secrets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    configmaps: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    token: str | None = None


@dataclass(frozen=True, slots=True)
class VolumeContent:
    """A volume's files (``files is None``: an ``emptyDir``)."""

    name: str
    files: Mapping[str, bytes] | None = None


@dataclass(frozen=True, slots=True)
class Probe:
    """A readiness probe: an HTTP GET or a TCP connect to the pod's own address."""

    kind: str  # "http" or "tcp"
    port: int
    path: str = "/"
    period: float = 10.0
    initial_delay: float = 0.0


@dataclass(frozen=True, slots=True)
class ContainerPlan:
    name: str
    argv: tuple[str, ...] | None
    env: tuple[tuple[str, str], ...] = ()
    mounts: tuple[Mount, ...] = ()
    gid: int = 0
    workdir: str = "/"
    probe: Probe | None = None
    sidecar: bool = False
    waiting: tuple[str, str] | None = None  # (reason, message) when it cannot start


@dataclass(frozen=True, slots=True)
class PodPlan:
    volumes: tuple[VolumeContent, ...]
    containers: tuple[ContainerPlan, ...]
    volume_errors: tuple[str, ...] = ()


def _meta(body: Mapping[str, Any]) -> Mapping[str, Any]:
    return body.get("metadata") or {}


def _decoded(body: Mapping[str, Any], kind: str) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    if kind == "Secret":
        for key, value in (body.get("data") or {}).items():
            try:
                files[key] = base64.b64decode(str(value), validate=True)
            except (binascii.Error, ValueError):
                continue
        for key, value in (body.get("stringData") or {}).items():
            files[key] = str(value).encode()
    else:
        for key, value in (body.get("data") or {}).items():
            files[key] = str(value).encode()
        for key, value in (body.get("binaryData") or {}).items():
            try:
                files[key] = base64.b64decode(str(value), validate=True)
            except (binascii.Error, ValueError):
                continue
    return files


def _project(data: Mapping[str, bytes], items: Any) -> dict[str, bytes]:
    if not items:
        return dict(data)
    return {str(i.get("path")): data[str(i.get("key"))] for i in items if i.get("key") in data}


def _labels_file(values: Mapping[str, str]) -> bytes:
    return "\n".join(f'{k}="{v}"' for k, v in sorted(values.items())).encode()


def _field_value(pod: Mapping[str, Any], path: str, context: PodContext) -> str | None:
    meta = _meta(pod)
    if path == "metadata.name":
        return str(meta.get("name"))
    if path == "metadata.namespace":
        return str(meta.get("namespace"))
    if path == "metadata.uid":
        return str(meta.get("uid"))
    if path == "status.podIP":
        return context.pod_ip
    if path in ("status.hostIP", "status.podIPs", "status.hostIPs"):
        return context.host_ip if path.startswith("status.host") else context.pod_ip
    if path == "spec.serviceAccountName":
        return str((pod.get("spec") or {}).get("serviceAccountName") or "default")
    if path == "spec.nodeName":
        return str((pod.get("spec") or {}).get("nodeName") or "")
    for prefix, source in (("metadata.labels", "labels"), ("metadata.annotations", "annotations")):
        if path.startswith(prefix + "['") and path.endswith("']"):
            return str((meta.get(source) or {}).get(path[len(prefix) + 2 : -2], ""))
    return None


def _downward_files(pod: Mapping[str, Any], items: Any, context: PodContext) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    meta = _meta(pod)
    for item in items or []:
        path = str((item.get("fieldRef") or {}).get("fieldPath") or "")
        if path == "metadata.labels":
            files[str(item.get("path"))] = _labels_file(meta.get("labels") or {})
        elif path == "metadata.annotations":
            files[str(item.get("path"))] = _labels_file(meta.get("annotations") or {})
        else:
            value = _field_value(pod, path, context)
            if value is not None:
                files[str(item.get("path"))] = value.encode()
    return files


def _volume(
    pod: Mapping[str, Any], volume: Mapping[str, Any], context: PodContext, errors: list[str]
) -> VolumeContent:
    name = str(volume.get("name"))
    for kind, field_name, source_map in (
        ("Secret", "secret", context.secrets),
        ("ConfigMap", "configMap", context.configmaps),
    ):
        source = volume.get(field_name)
        if source is None:
            continue
        object_name = str(source.get("secretName") if kind == "Secret" else source.get("name"))
        body = source_map.get(object_name)
        if body is None:
            if not source.get("optional"):
                errors.append(
                    f'MountVolume.SetUp failed for volume "{name}" : '
                    f'{kind.lower()} "{object_name}" not found'
                )
            return VolumeContent(name, {})
        return VolumeContent(name, _project(_decoded(body, kind), source.get("items")))
    projected = volume.get("projected")
    if projected is not None:
        files: dict[str, bytes] = {}
        for source in projected.get("sources") or []:
            token = source.get("serviceAccountToken")
            if token is not None:
                files[str(token.get("path") or "token")] = (context.token or "").encode()
            for kind, key in (("Secret", "secret"), ("ConfigMap", "configMap")):
                ref = source.get(key)
                if ref is None:
                    continue
                lookup = context.secrets if kind == "Secret" else context.configmaps
                body = lookup.get(str(ref.get("name")))
                if body is None:
                    if not ref.get("optional"):
                        errors.append(
                            f'MountVolume.SetUp failed for volume "{name}" : '
                            f'{kind.lower()} "{ref.get("name")}" not found'
                        )
                    continue
                files.update(_project(_decoded(body, kind), ref.get("items")))
            if source.get("downwardAPI") is not None:
                files.update(_downward_files(pod, source["downwardAPI"].get("items"), context))
        return VolumeContent(name, files)
    downward = volume.get("downwardAPI")
    if downward is not None:
        return VolumeContent(name, _downward_files(pod, downward.get("items"), context))
    return VolumeContent(name, None)


def _env(
    pod: Mapping[str, Any], container: Mapping[str, Any], context: PodContext
) -> tuple[dict[str, str], str | None]:
    env: dict[str, str] = {
        "PATH": DEFAULT_PATH,
        "HOSTNAME": str(_meta(pod).get("name")),
        "HOME": "/root",
    }
    for source in container.get("envFrom") or []:
        prefix = str(source.get("prefix") or "")
        for kind, key, lookup in (
            ("Secret", "secretRef", context.secrets),
            ("ConfigMap", "configMapRef", context.configmaps),
        ):
            ref = source.get(key)
            if ref is None:
                continue
            body = lookup.get(str(ref.get("name")))
            if body is None:
                if ref.get("optional"):
                    continue
                return env, f'{kind.lower()} "{ref.get("name")}" not found'
            for name, value in _decoded(body, kind).items():
                env[prefix + name] = value.decode(errors="replace")
    for item in container.get("env") or []:
        name = str(item.get("name"))
        if item.get("valueFrom") is None:
            env[name] = _expand(str(item.get("value") or ""), env)
            continue
        value_from = item["valueFrom"]
        if value_from.get("fieldRef") is not None:
            field_value = _field_value(pod, str(value_from["fieldRef"].get("fieldPath")), context)
            env[name] = field_value or ""
            continue
        for kind, key, lookup in (
            ("Secret", "secretKeyRef", context.secrets),
            ("ConfigMap", "configMapKeyRef", context.configmaps),
        ):
            ref = value_from.get(key)
            if ref is None:
                continue
            body = lookup.get(str(ref.get("name")))
            data = _decoded(body, kind) if body is not None else None
            if data is None or str(ref.get("key")) not in data:
                if ref.get("optional"):
                    break
                if data is None:
                    return env, f'{kind.lower()} "{ref.get("name")}" not found'
                return (
                    env,
                    f"couldn't find key {ref.get('key')} in {kind} {_meta(pod).get('namespace')}/{ref.get('name')}",
                )
            env[name] = data[str(ref.get("key"))].decode(errors="replace")
    return env, None


def _expand(text: str, env: Mapping[str, str]) -> str:
    from meshlet.daemon.images import expand_variables

    return expand_variables(text, env)


def _probe(container: Mapping[str, Any]) -> Probe | None:
    probe = container.get("readinessProbe")
    if not probe:
        return None
    period = float(probe.get("periodSeconds") or 10)
    delay = float(probe.get("initialDelaySeconds") or 0)
    ports = {p.get("name"): p.get("containerPort") for p in container.get("ports") or []}

    def number(value: Any) -> int | None:
        if isinstance(value, int):
            return value
        resolved = ports.get(value)
        return resolved if isinstance(resolved, int) else None

    if probe.get("httpGet") is not None:
        port = number(probe["httpGet"].get("port"))
        if port:
            return Probe("http", port, str(probe["httpGet"].get("path") or "/"), period, delay)
    if probe.get("tcpSocket") is not None:
        port = number(probe["tcpSocket"].get("port"))
        if port:
            return Probe("tcp", port, "/", period, delay)
    return None


def plan_pod(pod: Mapping[str, Any], context: PodContext) -> PodPlan:
    """The pod's volumes and containers as the node will make them."""
    spec = pod.get("spec") or {}
    errors: list[str] = []
    volumes = tuple(_volume(pod, v, context, errors) for v in spec.get("volumes") or [])
    by_name = {v.name for v in volumes}
    containers: list[ContainerPlan] = []
    for container in spec.get("containers") or []:
        name = str(container.get("name"))
        env, env_error = _env(pod, container, context)
        mounts: list[Mount] = []
        mount_error = None
        for mount in container.get("volumeMounts") or []:
            volume = str(mount.get("name"))
            if volume not in by_name:
                mount_error = f'volume "{volume}" not found'
                continue
            source = f"{context.pod_dir}/volumes/{volume}"
            if mount.get("subPath"):
                source += "/" + str(mount["subPath"]).strip("/")
            mounts.append(Mount(source, str(mount.get("mountPath")), bool(mount.get("readOnly"))))
        argv = container_argv(
            str(container.get("image") or ""),
            [str(a) for a in container.get("command") or []],
            [str(a) for a in container.get("args") or []],
            env,
            context.catalog,
        )
        waiting: tuple[str, str] | None = None
        if argv is None:
            image = container.get("image")
            waiting = (
                "ErrImagePull",
                f'image "{image}" is not in meshlet\'s image catalog; map it to a command in '
                "MESHLET_HOME/images.yaml",
            )
        elif env_error or mount_error:
            waiting = ("CreateContainerConfigError", str(env_error or mount_error))
        security = container.get("securityContext") or {}
        pod_security = spec.get("securityContext") or {}
        gid = security.get("runAsGroup", pod_security.get("runAsGroup", 0))
        containers.append(
            ContainerPlan(
                name=name,
                argv=tuple(argv) if argv else None,
                env=tuple(sorted(env.items())),
                mounts=tuple(mounts),
                gid=int(gid) if isinstance(gid, int) else 0,
                workdir=str(container.get("workingDir") or "/"),
                probe=_probe(container),
                sidecar=name == PROXY_CONTAINER,
                waiting=waiting,
            )
        )
    return PodPlan(volumes, tuple(containers), tuple(errors))
