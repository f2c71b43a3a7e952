"""What every namespace holds, as Kubernetes and istiod keep it there.

- the ``default`` ServiceAccount (the ServiceAccount controller makes it);
- the ``istio-ca-root-cert`` ConfigMap with the mesh root (``root-cert.pem``), which
  istiod's namespace controller writes into every namespace and rewrites when it
  drifts.

``namespace_objects`` returns the objects a namespace should hold that are missing or
differ; ``contents_of`` lists what deleting a namespace deletes with it. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from meshlet.store import ObjectKey

__all__ = [
    "ROOT_CERT_CONFIGMAP",
    "contents_of",
    "namespace_objects",
    "root_cert_configmap",
]

ROOT_CERT_CONFIGMAP = "istio-ca-root-cert"


def root_cert_configmap(namespace: str, root_pem: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": ROOT_CERT_CONFIGMAP,
            "namespace": namespace,
            "labels": {"istio.io/config": "true"},
        },
        "data": {"root-cert.pem": root_pem},
    }


def default_service_account(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "default", "namespace": namespace},
    }


def namespace_objects(
    namespace: str,
    *,
    root_pem: str,
    configmap: Mapping[str, Any] | None,
    service_account: Mapping[str, Any] | None,
) -> list[tuple[ObjectKey, dict[str, Any]]]:
    """The objects to write so that ``namespace`` holds what it should."""
    wanted: list[tuple[ObjectKey, dict[str, Any]]] = []
    if service_account is None:
        wanted.append(
            (ObjectKey("/ServiceAccount", namespace, "default"), default_service_account(namespace))
        )
    desired = root_cert_configmap(namespace, root_pem)
    if configmap is None or (configmap.get("data") or {}) != desired["data"]:
        wanted.append((ObjectKey("/ConfigMap", namespace, ROOT_CERT_CONFIGMAP), desired))
    return wanted


def contents_of(namespace: str, keys: Iterable[ObjectKey]) -> list[ObjectKey]:
    """Every object in ``namespace`` (pods last, so their owners go first), then the
    namespace itself."""
    inside = sorted(
        (k for k in keys if k.namespace == namespace), key=lambda k: (k.kind == "/Pod", k)
    )
    return [*inside, ObjectKey("/Namespace", "", namespace)]
