"""``meshlet install --kubeconfig …`` and ``uninstall --purge --kubeconfig …`` (async shell).

Theory of operation: install applies, in order, exactly the objects ``meshlet
manifest generate`` prints (``meshlet.kube.manifests``), each with a server-side apply
(``PATCH`` with ``application/apply-patch+yaml``, field manager ``meshlet``,
``force=true``), so installing again updates what changed and leaves what other
managers own. The mesh CA is the one already in the cluster's ``cacerts`` Secret when
there is one (a reinstall keeps the root every sidecar trusts), else a new
self-signed root. Then it waits until the ``istiod`` Deployment has an available
replica (or the timeout passes) and prints istioctl's lines.

``uninstall --purge`` deletes the same objects in reverse order (absent ones are
fine), then the ``istio-ca-root-cert`` ConfigMap of every namespace (the control plane
writes one into each). Deleting the CRDs deletes every Sidecar, PeerAuthentication
and DestinationRule with them, as ``istioctl uninstall --purge`` does.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from meshlet.ca.signing import PLUGIN_CA_FILES, Signer, load_plugin_ca
from meshlet.errors import MeshletError
from meshlet.kube.client import APPLY_PATCH, ApiStatusError, KubeApi
from meshlet.kube.manifests import CA_SECRET, ROOT_CERT_CONFIGMAP, generate_manifests
from meshlet.kube.settings import CONTROL_PLANE_NAME, KubeSettings

__all__ = [
    "FIELD_MANAGER",
    "Placement",
    "apply_objects",
    "delete_objects",
    "existing_signer",
    "install",
    "placement",
    "uninstall",
]

FIELD_MANAGER = "meshlet"


@dataclass(frozen=True, slots=True)
class Placement:
    """Where the API serves a kind: its plural and whether it is namespaced."""

    plural: str
    namespaced: bool


_PLACEMENTS: Mapping[str, Placement] = {
    "ClusterRole": Placement("clusterroles", False),
    "ClusterRoleBinding": Placement("clusterrolebindings", False),
    "ConfigMap": Placement("configmaps", True),
    "CustomResourceDefinition": Placement("customresourcedefinitions", False),
    "Deployment": Placement("deployments", True),
    "MutatingWebhookConfiguration": Placement("mutatingwebhookconfigurations", False),
    "Namespace": Placement("namespaces", False),
    "Role": Placement("roles", True),
    "RoleBinding": Placement("rolebindings", True),
    "Secret": Placement("secrets", True),
    "Service": Placement("services", True),
    "ServiceAccount": Placement("serviceaccounts", True),
}


def placement(obj: Mapping[str, Any]) -> str:
    """The URL path of an object (``/apis/apps/v1/namespaces/istio-system/deployments/istiod``)."""
    kind = str(obj.get("kind"))
    found = _PLACEMENTS.get(kind)
    if found is None:
        raise MeshletError(f"meshlet does not know where the API serves {kind}")
    api_version = str(obj.get("apiVersion"))
    base = f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"
    metadata = obj.get("metadata") or {}
    name = str(metadata.get("name"))
    if found.namespaced:
        return f"{base}/namespaces/{metadata.get('namespace')}/{found.plural}/{name}"
    return f"{base}/{found.plural}/{name}"


def _describe(obj: Mapping[str, Any]) -> str:
    api_version = str(obj.get("apiVersion"))
    group = api_version.split("/", maxsplit=1)[0] if "/" in api_version else ""
    kind = str(obj.get("kind")).lower()
    name = (obj.get("metadata") or {}).get("name")
    return f"{kind}.{group}/{name}" if group else f"{kind}/{name}"


async def apply_objects(
    api: KubeApi, objects: Sequence[Mapping[str, Any]], *, report: Callable[[str], None]
) -> None:
    """Server-side apply each object, in order."""
    for obj in objects:
        await api.request(
            "PATCH",
            placement(obj),
            query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
            body=dict(obj),
            content_type=APPLY_PATCH,
        )
        report(f"{_describe(obj)} serverside-applied")


async def delete_objects(
    api: KubeApi, objects: Sequence[Mapping[str, Any]], *, report: Callable[[str], None]
) -> None:
    """Delete each object, last first; one that is already gone is fine."""
    for obj in reversed(objects):
        try:
            await api.request("DELETE", placement(obj), query=[("propagationPolicy", "Background")])
        except ApiStatusError as error:
            if error.code != 404:
                raise
            continue
        report(f"{_describe(obj)} deleted")


async def existing_signer(api: KubeApi, namespace: str) -> Signer | None:
    """The mesh CA kept in the cluster's ``cacerts`` Secret, if there is one."""
    try:
        secret = await api.request("GET", f"/api/v1/namespaces/{namespace}/secrets/{CA_SECRET}")
    except ApiStatusError as error:
        if error.code == 404:
            return None
        raise
    data = secret.get("data") or {}
    files = {name: base64.b64decode(data[name]) for name in PLUGIN_CA_FILES if name in data}
    return load_plugin_ca(files)


async def _wait_available(api: KubeApi, namespace: str, timeout: float) -> None:
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments/{CONTROL_PLANE_NAME}"
    deadline = time.monotonic() + timeout
    while True:
        deployment = await api.request("GET", path)
        status = deployment.get("status") or {}
        if int(status.get("availableReplicas") or 0) >= 1:
            return
        if time.monotonic() >= deadline:
            raise MeshletError(
                f"the {CONTROL_PLANE_NAME} Deployment in {namespace} has no available replica "
                f"after {timeout:g}s; see: kubectl -n {namespace} describe deployment "
                f"{CONTROL_PLANE_NAME}"
            )
        await asyncio.sleep(min(2.0, max(0.05, timeout / 50)))


async def install(
    api: KubeApi,
    settings: KubeSettings,
    *,
    set_flags: Sequence[str],
    new_signer: Callable[[], Signer],
    report: Callable[[str], None],
    readiness_timeout: float = 300.0,
) -> list[dict[str, Any]]:
    """Apply the manifests and wait for the control plane; returns what was applied."""
    signer = await existing_signer(api, settings.namespace) or new_signer()
    objects = generate_manifests(settings, signer, set_flags=set_flags)
    await apply_objects(api, objects, report=report)
    if readiness_timeout > 0:
        await _wait_available(api, settings.namespace, readiness_timeout)
    return objects


async def uninstall(
    api: KubeApi,
    settings: KubeSettings,
    *,
    new_signer: Callable[[], Signer],
    report: Callable[[str], None],
) -> None:
    """Delete everything install applied, and every namespace's root certificate."""
    signer = await existing_signer(api, settings.namespace) or new_signer()
    await delete_objects(api, generate_manifests(settings, signer), report=report)
    namespaces = await api.request("GET", "/api/v1/namespaces")
    for item in namespaces.get("items") or []:
        name = (item.get("metadata") or {}).get("name")
        try:
            await api.request(
                "DELETE", f"/api/v1/namespaces/{name}/configmaps/{ROOT_CERT_CONFIGMAP}"
            )
        except ApiStatusError as error:
            if error.code != 404:
                raise
            continue
        report(f"configmap/{ROOT_CERT_CONFIGMAP} deleted from {name}")
