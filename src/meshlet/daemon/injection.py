"""The sidecar injector: a pod with Istio's ``istio-proxy`` container added.

Theory of operation: Istio's mutating webhook sees every pod as it is created and
decides (``injection_required``):

- a pod label or annotation ``sidecar.istio.io/inject`` of ``"false"`` never gets a
  sidecar, and ``"true"`` always does (unless its namespace says
  ``istio-injection=disabled``);
- otherwise the namespace label ``istio-injection=enabled`` decides;
- pods with ``hostNetwork``, pods that already have an ``istio-proxy`` container, and
  pods in the control plane's namespaces are left alone.

``inject`` then returns the pod with the ``istio-proxy`` container appended (so the
pod shows ``2/2``), the volumes it needs (the mesh root from the ``istio-ca-root-cert``
ConfigMap at ``/var/run/secrets/istio``, the pod's token for the CA and xDS at
``/var/run/secrets/tokens/istio-token``, the SDS socket directory, pod info) and the
user's ``sidecar.istio.io/userVolume`` / ``userVolumeMount`` volumes, read in Istio's
JSON-array form or in the map form (``{"name": {...}}``), mounted into ``istio-proxy``
only. The proxy runs with group 1337 (its traffic is not captured) and is probed on
15021 ``/healthz/ready``. The pod is annotated ``sidecar.istio.io/status`` as Istio
annotates it, and ``istio.io/rev: default``.

With ``capture_init`` (a real Kubernetes cluster, where no local runtime writes the
capture rules) the pod also gets Istio's ``istio-init`` init container: it runs
``python -m meshlet.kube.istio_init`` from the sidecar's image with the pod's
``traffic.sidecar.istio.io/…`` annotations as flags and the ``NET_ADMIN``/``NET_RAW``
capabilities, and writes the same ``nat`` table the local runtime writes
(``meshlet.runtime.capture``) before any other container starts.

``kube-inject`` and the Kubernetes webhook use the same function. Pure: dicts in, a
new dict out.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from meshlet.daemon.images import PROXY_IMAGE
from meshlet.errors import ConfigError

__all__ = [
    "INIT_CONTAINER",
    "INJECT_ANNOTATION",
    "PROXY_CONTAINER",
    "InjectionSettings",
    "inject",
    "injection_required",
    "parse_user_volume_mounts",
    "parse_user_volumes",
]

INJECT_ANNOTATION = "sidecar.istio.io/inject"
USER_VOLUME = "sidecar.istio.io/userVolume"
USER_VOLUME_MOUNT = "sidecar.istio.io/userVolumeMount"
PROXY_CONFIG = "proxy.istio.io/config"
STATUS_ANNOTATION = "sidecar.istio.io/status"
PROXY_CONTAINER = "istio-proxy"
INIT_CONTAINER = "istio-init"
CAPTURE_ANNOTATIONS = (
    ("traffic.sidecar.istio.io/includeInboundPorts", "--include-inbound-ports", "*"),
    ("traffic.sidecar.istio.io/excludeInboundPorts", "--exclude-inbound-ports", ""),
    ("traffic.sidecar.istio.io/excludeOutboundPorts", "--exclude-outbound-ports", ""),
    ("traffic.sidecar.istio.io/includeOutboundIPRanges", "--include-outbound-ip-ranges", "*"),
    ("traffic.sidecar.istio.io/excludeOutboundIPRanges", "--exclude-outbound-ip-ranges", ""),
)
PROXY_GID = 1337
EXCLUDED_NAMESPACES = frozenset(
    {"kube-system", "kube-public", "kube-node-lease", "local-path-storage"}
)


@dataclass(frozen=True, slots=True)
class InjectionSettings:
    """What the injector writes into every sidecar."""

    image: str = PROXY_IMAGE
    xds_address: str = "istiod.istio-system.svc:15012"  # TLS, the sidecar authenticated
    ca_address: str = "istiod.istio-system.svc:15012"
    trust_domain: str = "cluster.local"
    root_namespace: str = "istio-system"
    concurrency: int = 2
    capture_init: bool = False  # add istio-init (a real cluster; the local runtime captures)


def _flag(value: Any) -> str | None:
    return value.strip().lower() if isinstance(value, str) else None


def injection_required(
    pod: Mapping[str, Any],
    namespace_labels: Mapping[str, str],
    settings: InjectionSettings | None = None,
) -> bool:
    """Whether Istio's webhook would inject a sidecar into ``pod``."""
    settings = settings or InjectionSettings()
    metadata = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    namespace = str(metadata.get("namespace") or "default")
    if namespace in EXCLUDED_NAMESPACES or namespace == settings.root_namespace:
        return False
    if spec.get("hostNetwork"):
        return False
    if any(c.get("name") == PROXY_CONTAINER for c in spec.get("containers") or []):
        return False
    namespace_says = namespace_labels.get("istio-injection")
    if namespace_says == "disabled":
        return False
    pod_says = _flag((metadata.get("labels") or {}).get(INJECT_ANNOTATION))
    if pod_says is None:
        pod_says = _flag((metadata.get("annotations") or {}).get(INJECT_ANNOTATION))
    if pod_says in ("false", "n", "no", "off", "0"):
        return False
    if pod_says in ("true", "y", "yes", "on", "1"):
        return True
    return namespace_says == "enabled"


def _named_entries(raw: str, annotation: str, what: str) -> list[dict[str, Any]]:
    try:
        value: Any = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ConfigError(
            f"injection failed: annotation {annotation}: invalid JSON: {error.msg}"
        ) from None
    entries: list[dict[str, Any]] = []
    if isinstance(value, dict):
        for name, body in sorted(value.items()):
            if not isinstance(body, dict):
                raise ConfigError(
                    f"injection failed: annotation {annotation}: {what} {name!r} must be an object"
                )
            entries.append({"name": name, **body})
    elif isinstance(value, list):
        for item in value:
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise ConfigError(
                    f"injection failed: annotation {annotation}: each {what} needs a name"
                )
            entries.append(dict(item))
    else:
        raise ConfigError(
            f"injection failed: annotation {annotation}: expected a JSON object or array"
        )
    return entries


def parse_user_volumes(annotations: Mapping[str, str]) -> list[dict[str, Any]]:
    """The volumes of ``sidecar.istio.io/userVolume`` (map or array form)."""
    raw = annotations.get(USER_VOLUME)
    return _named_entries(raw, USER_VOLUME, "volume") if raw else []


def parse_user_volume_mounts(annotations: Mapping[str, str]) -> list[dict[str, Any]]:
    """The mounts of ``sidecar.istio.io/userVolumeMount`` (map or array form)."""
    raw = annotations.get(USER_VOLUME_MOUNT)
    mounts = _named_entries(raw, USER_VOLUME_MOUNT, "volume mount") if raw else []
    for mount in mounts:
        if not isinstance(mount.get("mountPath"), str) or not mount["mountPath"]:
            raise ConfigError(
                f"injection failed: annotation {USER_VOLUME_MOUNT}: volume mount "
                f"{mount['name']!r} needs a mountPath"
            )
    return mounts


def parse_proxy_metadata(annotations: Mapping[str, str]) -> dict[str, str]:
    """``proxyMetadata`` of the ``proxy.istio.io/config`` annotation (a ProxyConfig in
    YAML or JSON): environment variables Istio sets on the istio-proxy container."""
    raw = annotations.get(PROXY_CONFIG)
    if not raw:
        return {}
    try:
        config = yaml.safe_load(raw)
    except yaml.YAMLError as error:
        raise ConfigError(f"injection failed: annotation {PROXY_CONFIG}: {error}") from None
    metadata = (config or {}).get("proxyMetadata") if isinstance(config, dict) else None
    if metadata is None:
        return {}
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise ConfigError(
            f"injection failed: annotation {PROXY_CONFIG}: proxyMetadata must map names to strings"
        )
    return dict(metadata)


def _proxy_container(
    settings: InjectionSettings, user_mounts: list[dict[str, Any]]
) -> dict[str, Any]:
    def field_env(name: str, path: str) -> dict[str, Any]:
        return {"name": name, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}}

    return {
        "name": PROXY_CONTAINER,
        "image": settings.image,
        "imagePullPolicy": "IfNotPresent",
        "args": [
            "--pod-name",
            "$(POD_NAME)",
            "--namespace",
            "$(POD_NAMESPACE)",
            "--service-account",
            "$(SERVICE_ACCOUNT)",
            "--pod-ip",
            "$(INSTANCE_IP)",
            "--xds-address",
            settings.xds_address,
            "--ca-address",
            settings.ca_address,
            "--root-cert",
            "/var/run/secrets/istio/root-cert.pem",
            "--token",
            "/var/run/secrets/tokens/istio-token",
            "--concurrency",
            str(settings.concurrency),
        ],
        "env": [
            {"name": "PILOT_CERT_PROVIDER", "value": "istiod"},
            {"name": "CA_ADDR", "value": settings.ca_address},
            field_env("POD_NAME", "metadata.name"),
            field_env("POD_NAMESPACE", "metadata.namespace"),
            field_env("INSTANCE_IP", "status.podIP"),
            field_env("SERVICE_ACCOUNT", "spec.serviceAccountName"),
            field_env("HOST_IP", "status.hostIP"),
            {"name": "ISTIO_CPU_LIMIT", "value": "0"},
            {"name": "PROXY_CONFIG", "value": "{}\n"},
            {"name": "ISTIO_META_CLUSTER_ID", "value": "Kubernetes"},
            {"name": "ISTIO_META_MESH_ID", "value": settings.trust_domain},
            {"name": "TRUST_DOMAIN", "value": settings.trust_domain},
        ],
        "ports": [{"containerPort": 15090, "name": "http-envoy-prom", "protocol": "TCP"}],
        "readinessProbe": {
            "failureThreshold": 4,
            "httpGet": {"path": "/healthz/ready", "port": 15021, "scheme": "HTTP"},
            "periodSeconds": 15,
            "successThreshold": 1,
            "timeoutSeconds": 3,
        },
        "resources": {
            "limits": {"cpu": "2", "memory": "1Gi"},
            "requests": {"cpu": "100m", "memory": "128Mi"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "runAsGroup": PROXY_GID,
            "runAsNonRoot": True,
            "runAsUser": PROXY_GID,
        },
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "volumeMounts": [
            {"mountPath": "/var/run/secrets/workload-spiffe-uds", "name": "workload-socket"},
            {"mountPath": "/var/run/secrets/workload-spiffe-credentials", "name": "workload-certs"},
            {"mountPath": "/var/run/secrets/istio", "name": "istiod-ca-cert"},
            {"mountPath": "/var/lib/istio/data", "name": "istio-data"},
            {"mountPath": "/etc/istio/proxy", "name": "istio-envoy"},
            {"mountPath": "/var/run/secrets/tokens", "name": "istio-token"},
            {"mountPath": "/etc/istio/pod", "name": "istio-podinfo"},
            *user_mounts,
        ],
    }


def _proxy_volumes() -> list[dict[str, Any]]:
    return [
        {"emptyDir": {}, "name": "workload-socket"},
        {"emptyDir": {}, "name": "workload-certs"},
        {"emptyDir": {"medium": "Memory"}, "name": "istio-envoy"},
        {"emptyDir": {}, "name": "istio-data"},
        {
            "downwardAPI": {
                "defaultMode": 420,
                "items": [
                    {
                        "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.labels"},
                        "path": "labels",
                    },
                    {
                        "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.annotations"},
                        "path": "annotations",
                    },
                ],
            },
            "name": "istio-podinfo",
        },
        {
            "name": "istio-token",
            "projected": {
                "defaultMode": 420,
                "sources": [
                    {
                        "serviceAccountToken": {
                            "audience": "istio-ca",
                            "expirationSeconds": 43200,
                            "path": "istio-token",
                        }
                    }
                ],
            },
        },
        {"configMap": {"defaultMode": 420, "name": "istio-ca-root-cert"}, "name": "istiod-ca-cert"},
    ]


def _init_container(settings: InjectionSettings, annotations: Mapping[str, str]) -> dict[str, Any]:
    from meshlet.runtime.capture import capture_config_from_annotations

    try:
        capture_config_from_annotations(annotations)
    except ValueError as error:
        raise ConfigError(f"injection failed: annotation {error}") from None
    args: list[str] = []
    for annotation, flag, default in CAPTURE_ANNOTATIONS:
        args += [flag, str(annotations.get(annotation, default))]
    return {
        "name": INIT_CONTAINER,
        "image": settings.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", "-m", "meshlet.kube.istio_init"],
        "args": args,
        "resources": {
            "limits": {"cpu": "2", "memory": "1Gi"},
            "requests": {"cpu": "100m", "memory": "128Mi"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]},
            "privileged": False,
            "readOnlyRootFilesystem": False,
            "runAsGroup": 0,
            "runAsNonRoot": False,
            "runAsUser": 0,
        },
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
    }


def inject(pod: Mapping[str, Any], settings: InjectionSettings | None = None) -> dict[str, Any]:
    """``pod`` with the sidecar added (call ``injection_required`` first).

    Raises ``ConfigError`` (``injection failed: …``) for a malformed userVolume or
    userVolumeMount annotation, or a user volume whose name the pod already uses.
    """
    settings = settings or InjectionSettings()
    result: dict[str, Any] = copy.deepcopy(dict(pod))
    metadata = result.setdefault("metadata", {})
    annotations: dict[str, str] = metadata.setdefault("annotations", {}) or {}
    metadata["annotations"] = annotations
    spec = result.setdefault("spec", {})
    user_volumes = parse_user_volumes(annotations)
    user_mounts = parse_user_volume_mounts(annotations)
    proxy_volumes = _proxy_volumes()
    existing = {v.get("name") for v in spec.get("volumes") or []}
    taken = existing | {v["name"] for v in proxy_volumes}
    for volume in user_volumes:
        if volume["name"] in taken:
            raise ConfigError(
                f"injection failed: volume {volume['name']!r} of {USER_VOLUME} is already "
                "defined in the pod"
            )
    known = taken | {v["name"] for v in user_volumes}
    for mount in user_mounts:
        if mount["name"] not in known:
            raise ConfigError(
                f"injection failed: {USER_VOLUME_MOUNT} names volume {mount['name']!r}, "
                "which the pod does not have"
            )
    containers = list(spec.get("containers") or [])
    proxy = _proxy_container(settings, user_mounts)
    proxy["env"].extend(
        {"name": name, "value": value}
        for name, value in sorted(parse_proxy_metadata(annotations).items())
    )
    containers.append(proxy)
    spec["containers"] = containers
    spec["volumes"] = [*(spec.get("volumes") or []), *proxy_volumes, *user_volumes]
    init_names: list[str] | None = None
    if settings.capture_init:
        spec["initContainers"] = [
            *(spec.get("initContainers") or []),
            _init_container(settings, annotations),
        ]
        init_names = [INIT_CONTAINER]
    status = {
        "initContainers": init_names,
        "containers": [PROXY_CONTAINER],
        "volumes": [v["name"] for v in proxy_volumes] + [v["name"] for v in user_volumes],
        "imagePullSecrets": None,
        "revision": "default",
    }
    annotations[STATUS_ANNOTATION] = json.dumps(status, separators=(",", ":"))
    annotations.setdefault("kubectl.kubernetes.io/default-container", containers[0]["name"])
    labels = metadata.setdefault("labels", {}) or {}
    metadata["labels"] = labels
    labels.setdefault("security.istio.io/tlsMode", "istio")
    labels.setdefault(
        "service.istio.io/canonical-name", labels.get("app") or metadata.get("name", "")
    )
    labels.setdefault("service.istio.io/canonical-revision", labels.get("version") or "latest")
    return result
