"""Typed values for the Kubernetes objects meshlet interprets.

Theory of operation: the loader hands over a ``Resource`` whose body passed its
kind's schema, so every field here has the right type or is absent (``null``
included). Each class's ``from_resource`` reads the fields meshlet acts on and
applies the API server's defaults on the way: a Service port's ``targetPort`` is its
``port``, protocols are ``TCP``, a pod runs as the ``default`` service account, a
Deployment has one replica, a Secret is ``Opaque`` and its ``stringData`` is merged
into ``data`` (winning on a shared key). Fields meshlet does not act on stay in the
``Resource``. A namespaced object without a namespace is in ``default``, as ``kubectl``
places it.

``from_resource(resource)`` picks the class by kind. Undecodable base64 in a Secret or
a ConfigMap's ``binaryData`` raises ``ConfigError`` naming the key and its line.

Pure: no I/O.
"""

from __future__ import annotations

import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from meshlet.errors import ConfigError
from meshlet.resources.kinds.volumes import VOLUME
from meshlet.resources.objects import Resource
from meshlet.resources.yamlsource import Path

__all__ = [
    "ConfigMap",
    "Container",
    "ContainerPort",
    "Deployment",
    "EnvVar",
    "KubernetesObject",
    "Namespace",
    "Pod",
    "PodSpec",
    "PodTemplate",
    "Secret",
    "Service",
    "ServiceAccount",
    "ServicePort",
    "Volume",
    "VolumeMount",
    "decode_base64",
    "from_resource",
]

DEFAULT_NAMESPACE = "default"
DEFAULT_SERVICE_ACCOUNT = "default"


# --- reading a checked body ------------------------------------------------------------


def _obj(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: Any, default: str = "") -> str:
    return value if isinstance(value, str) else default


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _bool(value: Any) -> bool:
    return value is True


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(item for item in _items(value) if isinstance(item, str))


def _string_map(value: Any) -> dict[str, str]:
    """A ``map[string]string`` in key order (``null`` values read as ``""``)."""
    return {str(key): _str(item) for key, item in sorted(_obj(value).items())}


def _namespace(resource: Resource) -> str:
    return resource.namespace or DEFAULT_NAMESPACE


# --- base64, as Go's encoding/base64.StdEncoding reads it ----------------------------

_ALPHABET = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
_NEWLINES = frozenset(b"\r\n")


def _base64_error_offset(data: bytes) -> int | None:
    """Where Go's standard (padded) decoder stops on ``data``, or ``None`` if it decodes.

    Go skips CR and LF anywhere, reads quanta of four symbols, and accepts ``=``
    padding only at the end of the last quantum; the offset is a byte offset into
    the input as written, which is what the API server reports.
    """
    index = 0
    size = len(data)
    while True:
        symbols = 0
        while symbols < 4:
            if index == size:
                if symbols == 0:
                    return None
                return index - symbols  # a short final quantum (Go needs padding)
            byte = data[index]
            index += 1
            if byte in _NEWLINES:
                continue
            if byte in _ALPHABET:
                symbols += 1
                continue
            if byte != ord("="):
                return index - 1
            # padding: only "xx==" or "xxx=" may end the input
            if symbols < 2:
                return index - 1
            if symbols == 2:
                while index < size and data[index] in _NEWLINES:
                    index += 1
                if index == size:
                    return size  # "xx=" lacks its second "="
                if data[index] != ord("="):
                    return index - 1
                index += 1
            while index < size and data[index] in _NEWLINES:
                index += 1
            return index if index < size else None  # anything after padding is garbage


def decode_base64(text: str) -> bytes:
    """The bytes of ``text``; raises ``ValueError("illegal base64 data at input byte N")``.

    The rules are the API server's (Go's ``base64.StdEncoding``): padding required,
    CR and LF ignored, nothing else outside the alphabet.
    """
    raw = text.encode("utf-8")  # bytes outside ASCII are simply not in the alphabet
    offset = _base64_error_offset(raw)
    if offset is not None:
        raise ValueError(f"illegal base64 data at input byte {offset}")
    cleaned = bytes(byte for byte in raw if byte not in _NEWLINES)
    try:
        return binascii.a2b_base64(cleaned)
    except binascii.Error as exc:  # not reached for input the check above accepts
        raise ValueError(str(exc)) from None


def _decode_data(resource: Resource, field: str) -> dict[str, bytes]:
    decoded: dict[str, bytes] = {}
    for key, value in sorted(_obj(resource.body.get(field)).items()):
        try:
            decoded[key] = decode_base64(_str(value))
        except ValueError as exc:
            path: Path = (field, key)
            raise ConfigError(
                f"{field}[{key}]: Invalid value: {exc} (values of {field} are base64; "
                "plain text belongs in stringData)"
                if field == "data"
                else f"{field}[{key}]: Invalid value: {exc} (values of {field} are base64)",
                location=resource.location_of(path),
                resource=resource.ref,
                field=f"{field}[{key}]",
            ) from None
    return decoded


# --- core/v1 ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Namespace:
    name: str
    labels: Mapping[str, str]

    @classmethod
    def from_resource(cls, resource: Resource) -> Namespace:
        return cls(resource.name, _string_map(resource.metadata.get("labels")))


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    name: str
    namespace: str

    @classmethod
    def from_resource(cls, resource: Resource) -> ServiceAccount:
        return cls(resource.name, _namespace(resource))


@dataclass(frozen=True, slots=True)
class ServicePort:
    """One port of a Service; ``target_port`` is a number or a container port's name."""

    name: str
    port: int
    target_port: int | str
    protocol: str
    app_protocol: str | None

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> ServicePort:
        port = _int(body.get("port")) or 0
        target = body.get("targetPort")
        # the API server treats an unset, 0 or "" targetPort as "the same as port"
        target_port: int | str = port if target in (None, 0, "") else target
        return cls(
            name=_str(body.get("name")),
            port=port,
            target_port=target_port,
            protocol=_str(body.get("protocol")) or "TCP",
            app_protocol=_opt_str(body.get("appProtocol")),
        )


@dataclass(frozen=True, slots=True)
class Service:
    """A Service; ``selector`` is ``None`` for a Service without one (endpoints by hand)."""

    name: str
    namespace: str
    labels: Mapping[str, str]
    selector: Mapping[str, str] | None
    ports: tuple[ServicePort, ...]
    cluster_ip: str | None
    type: str

    @classmethod
    def from_resource(cls, resource: Resource) -> Service:
        spec = resource.spec
        selector = spec.get("selector")
        return cls(
            name=resource.name,
            namespace=_namespace(resource),
            labels=_string_map(resource.metadata.get("labels")),
            selector=_string_map(selector) if selector else None,
            ports=tuple(ServicePort.from_body(_obj(port)) for port in _items(spec.get("ports"))),
            cluster_ip=_opt_str(spec.get("clusterIP")) or None,
            type=_str(spec.get("type")) or "ClusterIP",
        )


@dataclass(frozen=True, slots=True)
class ContainerPort:
    container_port: int
    name: str | None
    protocol: str

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> ContainerPort:
        return cls(
            container_port=_int(body.get("containerPort")) or 0,
            name=_opt_str(body.get("name")) or None,
            protocol=_str(body.get("protocol")) or "TCP",
        )


@dataclass(frozen=True, slots=True)
class VolumeMount:
    name: str
    mount_path: str
    read_only: bool
    sub_path: str | None

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> VolumeMount:
        return cls(
            name=_str(body.get("name")),
            mount_path=_str(body.get("mountPath")),
            read_only=_bool(body.get("readOnly")),
            sub_path=_opt_str(body.get("subPath")) or None,
        )


_VOLUME_SOURCES = frozenset(VOLUME.fields) - {"name"}  # secret, configMap, emptyDir, …


@dataclass(frozen=True, slots=True)
class Volume:
    """A pod volume as meshlet serves it: a Secret, a ConfigMap or an empty directory.

    A volume that names no source at all is an ``emptyDir``, as the API server
    defaults it. Other sources leave all three unset.
    """

    name: str
    secret_name: str | None
    config_map_name: str | None
    empty_dir: bool
    optional: bool

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Volume:
        secret = body.get("secret")
        config_map = body.get("configMap")
        has_source = any(body.get(source) is not None for source in _VOLUME_SOURCES)
        source = _obj(secret) if secret is not None else _obj(config_map)
        return cls(
            name=_str(body.get("name")),
            secret_name=_str(_obj(secret).get("secretName")) if secret is not None else None,
            config_map_name=_str(_obj(config_map).get("name")) if config_map is not None else None,
            empty_dir=body.get("emptyDir") is not None or not has_source,
            optional=_bool(source.get("optional")),
        )


@dataclass(frozen=True, slots=True)
class EnvVar:
    """An environment variable; ``value`` is ``None`` when it comes from ``valueFrom``."""

    name: str
    value: str | None

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> EnvVar:
        value = body.get("value")
        if value is None and body.get("valueFrom") is None:
            value = ""  # an unset value is the empty string
        return cls(_str(body.get("name")), _opt_str(value))


@dataclass(frozen=True, slots=True)
class Container:
    name: str
    image: str
    command: tuple[str, ...]
    args: tuple[str, ...]
    env: tuple[EnvVar, ...]
    ports: tuple[ContainerPort, ...]
    volume_mounts: tuple[VolumeMount, ...]
    image_pull_policy: str | None

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Container:
        return cls(
            name=_str(body.get("name")),
            image=_str(body.get("image")),
            command=_strings(body.get("command")),
            args=_strings(body.get("args")),
            env=tuple(EnvVar.from_body(_obj(item)) for item in _items(body.get("env"))),
            ports=tuple(ContainerPort.from_body(_obj(item)) for item in _items(body.get("ports"))),
            volume_mounts=tuple(
                VolumeMount.from_body(_obj(item)) for item in _items(body.get("volumeMounts"))
            ),
            image_pull_policy=_opt_str(body.get("imagePullPolicy")) or None,
        )


@dataclass(frozen=True, slots=True)
class PodSpec:
    containers: tuple[Container, ...]
    init_containers: tuple[Container, ...]
    volumes: tuple[Volume, ...]
    service_account_name: str
    termination_grace_period_seconds: int | None

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> PodSpec:
        account = (
            _str(body.get("serviceAccountName"))
            or _str(body.get("serviceAccount"))  # the deprecated spelling
            or DEFAULT_SERVICE_ACCOUNT
        )
        return cls(
            containers=tuple(Container.from_body(_obj(c)) for c in _items(body.get("containers"))),
            init_containers=tuple(
                Container.from_body(_obj(c)) for c in _items(body.get("initContainers"))
            ),
            volumes=tuple(Volume.from_body(_obj(v)) for v in _items(body.get("volumes"))),
            service_account_name=account,
            termination_grace_period_seconds=_int(body.get("terminationGracePeriodSeconds")),
        )

    def container(self, name: str) -> Container | None:
        """The container (or init container) called ``name``."""
        for container in (*self.containers, *self.init_containers):
            if container.name == name:
                return container
        return None


@dataclass(frozen=True, slots=True)
class PodTemplate:
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    spec: PodSpec

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> PodTemplate:
        metadata = _obj(body.get("metadata"))
        return cls(
            labels=_string_map(metadata.get("labels")),
            annotations=_string_map(metadata.get("annotations")),
            spec=PodSpec.from_body(_obj(body.get("spec"))),
        )


@dataclass(frozen=True, slots=True)
class Pod:
    name: str
    namespace: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    spec: PodSpec

    @classmethod
    def from_resource(cls, resource: Resource) -> Pod:
        return cls(
            name=resource.name,
            namespace=_namespace(resource),
            labels=_string_map(resource.metadata.get("labels")),
            annotations=_string_map(resource.metadata.get("annotations")),
            spec=PodSpec.from_body(resource.spec),
        )


@dataclass(frozen=True, slots=True)
class Secret:
    """A Secret's bytes: ``data`` decoded, with ``stringData`` merged over it."""

    name: str
    namespace: str
    type: str
    data: Mapping[str, bytes]

    @classmethod
    def from_resource(cls, resource: Resource) -> Secret:
        data = _decode_data(resource, "data")
        for key, value in _obj(resource.body.get("stringData")).items():
            data[key] = _str(value).encode("utf-8")
        return cls(
            name=resource.name,
            namespace=_namespace(resource),
            type=_str(resource.body.get("type")) or "Opaque",
            data=dict(sorted(data.items())),
        )


@dataclass(frozen=True, slots=True)
class ConfigMap:
    name: str
    namespace: str
    data: Mapping[str, str]
    binary_data: Mapping[str, bytes]

    @classmethod
    def from_resource(cls, resource: Resource) -> ConfigMap:
        return cls(
            name=resource.name,
            namespace=_namespace(resource),
            data=_string_map(resource.body.get("data")),
            binary_data=_decode_data(resource, "binaryData"),
        )


# --- apps/v1 ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Deployment:
    """A Deployment; ``match_labels`` is its selector's ``matchLabels``."""

    name: str
    namespace: str
    labels: Mapping[str, str]
    replicas: int
    match_labels: Mapping[str, str]
    template: PodTemplate

    @classmethod
    def from_resource(cls, resource: Resource) -> Deployment:
        spec = resource.spec
        replicas = _int(spec.get("replicas"))
        return cls(
            name=resource.name,
            namespace=_namespace(resource),
            labels=_string_map(resource.metadata.get("labels")),
            replicas=1 if replicas is None else replicas,
            match_labels=_string_map(_obj(spec.get("selector")).get("matchLabels")),
            template=PodTemplate.from_body(_obj(spec.get("template"))),
        )


KubernetesObject = Namespace | ServiceAccount | Service | Pod | Secret | ConfigMap | Deployment

_BY_KIND: dict[tuple[str, str], Any] = {
    ("", "Namespace"): Namespace,
    ("", "ServiceAccount"): ServiceAccount,
    ("", "Service"): Service,
    ("", "Pod"): Pod,
    ("", "Secret"): Secret,
    ("", "ConfigMap"): ConfigMap,
    ("apps", "Deployment"): Deployment,
}


def from_resource(resource: Resource) -> KubernetesObject:
    """The typed value of a Kubernetes ``resource``; ``ValueError`` for any other kind."""
    model = _BY_KIND.get((resource.info.group, resource.kind))
    if model is None:
        raise ValueError(f"{resource.info.group or 'core'}/{resource.kind} has no Kubernetes model")
    value: KubernetesObject = model.from_resource(resource)
    return value
