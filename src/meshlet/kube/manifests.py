"""Everything ``meshlet install --kubeconfig`` applies, as Kubernetes objects.

Theory of operation: ``generate_manifests(settings, signer)`` returns the objects in
the order they are applied (what ``meshlet manifest generate`` prints):

1. the CustomResourceDefinitions of Sidecar, DestinationRule and PeerAuthentication,
   every version Istio serves (``v1`` stored), their ``openAPIV3Schema`` generated
   from meshlet's own schemas (``meshlet.resources.kinds.istio``, see
   ``openapi_schema``), so the API server refuses what meshlet would refuse;
2. the ``istio-system`` Namespace;
3. the control plane's ServiceAccount ``istiod``, its ClusterRole and
   ClusterRoleBinding ``istiod-clusterrole-istio-system`` (read the mesh's kinds,
   write the ``istio-ca-root-cert`` ConfigMaps, create TokenReviews);
4. the mesh CA as Istio's plug-in CA Secret ``cacerts`` (``ca-cert.pem``,
   ``ca-key.pem``, ``root-cert.pem``, ``cert-chain.pem``) and the
   ``istio-ca-root-cert`` ConfigMaps of ``istio-system`` and ``default`` (the control
   plane writes the same ConfigMap into every other namespace as it appears);
5. the ``istiod`` Deployment (meshlet's image running ``python -m meshlet.kube`` with
   the same ``--set`` flags) and Service (15010 xDS, 15012 CA, 443→15017 webhook,
   15014 monitoring);
6. the MutatingWebhookConfiguration ``istio-sidecar-injector``: Istio's two webhooks
   (namespaces labelled ``istio-injection=enabled``, and pods labelled
   ``sidecar.istio.io/inject=true`` elsewhere) calling ``istiod`` at ``/inject``,
   with the mesh root as ``caBundle`` (the webhook's serving certificate is issued by
   the mesh CA).

Every object carries ``app.kubernetes.io/managed-by: meshlet``. Pure: the same
settings and CA give the same objects.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from meshlet.ca.signing import Signer
from meshlet.kube.settings import (
    CA_PORT,
    CONTROL_PLANE_NAME,
    MONITORING_PORT,
    WEBHOOK_PORT,
    XDS_PORT,
    KubeSettings,
)
from meshlet.resources.kinds import KindInfo
from meshlet.resources.kinds.istio import KINDS as ISTIO_KINDS
from meshlet.resources.kinds.istio import OPTIONAL_IN_MESHLET
from meshlet.resources.schema import (
    Enum,
    Free,
    IntOrString,
    ListOf,
    MapOf,
    Obj,
    Scalar,
    SchemaType,
)

__all__ = [
    "CA_SECRET",
    "MANAGED_BY",
    "READY_PORT",
    "ROOT_CERT_CONFIGMAP",
    "WEBHOOK_CONFIGURATION",
    "crd_for",
    "generate_manifests",
    "openapi_schema",
    "root_cert_configmap",
]

MANAGED_BY = {"app.kubernetes.io/managed-by": "meshlet"}
CA_SECRET = "cacerts"
ROOT_CERT_CONFIGMAP = "istio-ca-root-cert"
WEBHOOK_CONFIGURATION = "istio-sidecar-injector"
CLUSTER_ROLE = "istiod-clusterrole-istio-system"
READY_PORT = 8080
_SELECTOR = {"app": "istiod", "istio": "pilot"}
_STORED_VERSION = "v1"


# --- CRDs from meshlet's schemas -------------------------------------------------


def _restore_required(kind: str, path: str, required: frozenset[str]) -> frozenset[str]:
    extra = {name for k, p, name in OPTIONAL_IN_MESHLET if k == kind and p == path}
    return required | extra


def openapi_schema(schema: SchemaType, *, kind: str = "", path: str = "") -> dict[str, Any]:
    """An OpenAPI v3 (structural) schema for one of meshlet's schema types.

    ``kind`` and ``path`` (``spec.ingress[]``) name where the type sits, so the fields
    meshlet leaves to Istio's validation messages are required again, as in Istio's
    CRDs.
    """
    match schema:
        case Scalar(type=type_name):
            return {"type": type_name}
        case Enum(values=values):
            return {"type": "string", "enum": list(values)}
        case IntOrString():
            return {"x-kubernetes-int-or-string": True}
        case Free():
            return {"x-kubernetes-preserve-unknown-fields": True}
        case ListOf(item=item):
            return {"type": "array", "items": openapi_schema(item, kind=kind, path=f"{path}[]")}
        case MapOf(value=value):
            return {
                "type": "object",
                "additionalProperties": openapi_schema(value, kind=kind, path=f"{path}.*"),
            }
        case Obj(fields=fields, required=required, preserve_unknown=preserve_unknown):
            out: dict[str, Any] = {"type": "object"}
            if fields:
                out["properties"] = {
                    name: openapi_schema(
                        fields[name], kind=kind, path=f"{path}.{name}" if path else name
                    )
                    for name in sorted(fields)
                }
            wanted = sorted(_restore_required(kind, path, required))
            if wanted:
                out["required"] = wanted
            if preserve_unknown:
                out["x-kubernetes-preserve-unknown-fields"] = True
            return out
    raise AssertionError(f"unknown schema type {schema!r}")


def _category(group: str) -> str:
    return group.replace(".", "-")


def crd_for(info: KindInfo) -> dict[str, Any]:
    """The CustomResourceDefinition of an Istio kind, from meshlet's schema."""
    top = info.schema
    schema = {
        "type": "object",
        "properties": {
            name: openapi_schema(top.fields[name], kind=info.kind, path=name)
            for name in ("spec", "status")
            if name in top.fields
        },
    }
    versions = [
        {
            "name": version,
            "served": True,
            "storage": version == _STORED_VERSION,
            "schema": {"openAPIV3Schema": schema},
            "subresources": {"status": {}},
        }
        for version in sorted(info.versions)
    ]
    names: dict[str, Any] = {
        "categories": ["istio-io", _category(info.group)],
        "kind": info.kind,
        "listKind": f"{info.kind}List",
        "plural": info.plural,
        "singular": info.kind.lower(),
    }
    if info.short_names:
        names["shortNames"] = list(info.short_names)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{info.plural}.{info.group}",
            "labels": {**MANAGED_BY, "app": "istio-pilot"},
        },
        "spec": {
            "group": info.group,
            "names": names,
            "scope": "Namespaced" if info.namespaced else "Cluster",
            "versions": versions,
        },
    }


# --- the control plane ---------------------------------------------------------------


def _meta(name: str, namespace: str | None = None, **labels: str) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "labels": {**MANAGED_BY, **labels}}
    if namespace is not None:
        metadata["namespace"] = namespace
    return metadata


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def root_cert_configmap(namespace: str, root_pem: bytes) -> dict[str, Any]:
    """The ``istio-ca-root-cert`` ConfigMap every injected pod mounts."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(ROOT_CERT_CONFIGMAP, namespace, **{"istio.io/config": "true"}),
        "data": {"root-cert.pem": root_pem.decode("ascii")},
    }


def _ca_secret(namespace: str, signer: Signer) -> dict[str, Any]:
    chain = b"".join(p.encode("ascii") for p in signer.chain_pems()[1:])
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(CA_SECRET, namespace),
        "type": "Opaque",
        "data": {
            "ca-cert.pem": _b64(signer.certificate_pem),
            "ca-key.pem": _b64(signer.key_pem),
            "cert-chain.pem": _b64(chain),
            "root-cert.pem": _b64(signer.root_pem),
        },
    }


def _rbac(namespace: str) -> list[dict[str, Any]]:
    read = ["get", "list", "watch"]
    rules = [
        {
            "apiGroups": [""],
            "resources": ["namespaces", "pods", "secrets", "services"],
            "verbs": read,
        },
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
        },
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": read},
        {
            "apiGroups": ["networking.istio.io"],
            "resources": ["destinationrules", "sidecars"],
            "verbs": read,
        },
        {"apiGroups": ["security.istio.io"], "resources": ["peerauthentications"], "verbs": read},
        {
            "apiGroups": ["authentication.k8s.io"],
            "resources": ["tokenreviews"],
            "verbs": ["create"],
        },
        {
            "apiGroups": [""],
            "resources": ["pods/portforward"],
            "verbs": ["create"],
        },
    ]
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": _meta(CONTROL_PLANE_NAME, namespace, app="istiod"),
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": _meta(CLUSTER_ROLE, app="istiod"),
            "rules": rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": _meta(CLUSTER_ROLE, app="istiod"),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": CLUSTER_ROLE,
            },
            "subjects": [
                {"kind": "ServiceAccount", "name": CONTROL_PLANE_NAME, "namespace": namespace}
            ],
        },
    ]


def _deployment(settings: KubeSettings, set_flags: Sequence[str]) -> dict[str, Any]:
    namespace = settings.namespace
    args: list[str] = []
    for flag in set_flags:
        args += ["--set", flag]

    def field_env(name: str, path: str) -> dict[str, Any]:
        return {"name": name, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}}

    container = {
        "name": "discovery",
        "image": settings.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", "-m", "meshlet.kube"],
        "args": ["--in-cluster", "--ca-dir", "/etc/cacerts", *args],
        "env": [
            field_env("POD_NAME", "metadata.name"),
            field_env("POD_NAMESPACE", "metadata.namespace"),
            {"name": "REVISION", "value": "default"},
        ],
        "ports": [
            {"containerPort": READY_PORT, "name": "http-ready", "protocol": "TCP"},
            {"containerPort": XDS_PORT, "name": "grpc-xds", "protocol": "TCP"},
            {"containerPort": CA_PORT, "name": "tls-ca", "protocol": "TCP"},
            {"containerPort": MONITORING_PORT, "name": "http-monitoring", "protocol": "TCP"},
            {"containerPort": WEBHOOK_PORT, "name": "https-webhook", "protocol": "TCP"},
        ],
        "readinessProbe": {
            "httpGet": {"path": "/ready", "port": READY_PORT, "scheme": "HTTP"},
            "initialDelaySeconds": 1,
            "periodSeconds": 3,
            "timeoutSeconds": 5,
        },
        "resources": {"requests": {"cpu": "500m", "memory": "256Mi"}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
            "runAsGroup": 1337,
            "runAsNonRoot": True,
            "runAsUser": 1337,
        },
        "volumeMounts": [
            {"mountPath": "/etc/cacerts", "name": "cacerts", "readOnly": True},
            {"mountPath": "/tmp", "name": "local-tmp"},
        ],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(CONTROL_PLANE_NAME, namespace, **_SELECTOR),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": dict(_SELECTOR)},
            "template": {
                "metadata": {
                    "labels": {**MANAGED_BY, **_SELECTOR, "sidecar.istio.io/inject": "false"},
                },
                "spec": {
                    "serviceAccountName": CONTROL_PLANE_NAME,
                    "containers": [container],
                    "volumes": [
                        {"name": "cacerts", "secret": {"secretName": CA_SECRET}},
                        {"name": "local-tmp", "emptyDir": {}},
                    ],
                },
            },
        },
    }


def _service(namespace: str) -> dict[str, Any]:
    ports = (
        ("grpc-xds", XDS_PORT, XDS_PORT),
        ("https-dns", CA_PORT, CA_PORT),
        ("https-webhook", 443, WEBHOOK_PORT),
        ("http-monitoring", MONITORING_PORT, MONITORING_PORT),
    )
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(CONTROL_PLANE_NAME, namespace, **_SELECTOR),
        "spec": {
            "ports": [
                {"name": name, "port": port, "protocol": "TCP", "targetPort": target}
                for name, port, target in ports
            ],
            "selector": dict(_SELECTOR),
        },
    }


def _webhook_configuration(namespace: str, root_pem: bytes) -> dict[str, Any]:
    def webhook(
        name: str, namespace_selector: dict[str, Any], object_selector: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "name": name,
            "admissionReviewVersions": ["v1"],
            "clientConfig": {
                "caBundle": _b64(root_pem),
                "service": {
                    "name": CONTROL_PLANE_NAME,
                    "namespace": namespace,
                    "path": "/inject",
                    "port": 443,
                },
            },
            "failurePolicy": "Fail",
            "matchPolicy": "Equivalent",
            "namespaceSelector": namespace_selector,
            "objectSelector": object_selector,
            "reinvocationPolicy": "Never",
            "rules": [
                {
                    "apiGroups": [""],
                    "apiVersions": ["v1"],
                    "operations": ["CREATE"],
                    "resources": ["pods"],
                    "scope": "*",
                }
            ],
            "sideEffects": "None",
            "timeoutSeconds": 10,
        }

    def expression(key: str, operator: str, *values: str) -> dict[str, Any]:
        found: dict[str, Any] = {"key": key, "operator": operator}
        if values:
            found["values"] = list(values)
        return found

    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": _meta(WEBHOOK_CONFIGURATION, app="sidecar-injector"),
        "webhooks": [
            webhook(
                "namespace.sidecar-injector.istio.io",
                {"matchExpressions": [expression("istio-injection", "In", "enabled")]},
                {"matchExpressions": [expression("sidecar.istio.io/inject", "NotIn", "false")]},
            ),
            webhook(
                "object.sidecar-injector.istio.io",
                {
                    "matchExpressions": [
                        expression("istio-injection", "DoesNotExist"),
                        expression(
                            "kubernetes.io/metadata.name",
                            "NotIn",
                            "kube-node-lease",
                            "kube-public",
                            "kube-system",
                            namespace,
                        ),
                    ]
                },
                {"matchExpressions": [expression("sidecar.istio.io/inject", "In", "true")]},
            ),
        ],
    }


def generate_manifests(
    settings: KubeSettings, signer: Signer, *, set_flags: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """Every object of a cluster install, in the order to apply them.

    ``set_flags`` are the ``--set`` flags ``settings`` came from: the control plane is
    started with the same ones.
    """
    namespace = settings.namespace
    root_pem = signer.root_pem
    crds = sorted((crd_for(info) for info in ISTIO_KINDS), key=lambda c: c["metadata"]["name"])
    return [
        *crds,
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": _meta(namespace),
        },
        *_rbac(namespace),
        _ca_secret(namespace, signer),
        root_cert_configmap("default", root_pem),
        root_cert_configmap(namespace, root_pem),
        _deployment(settings, set_flags),
        _service(namespace),
        _webhook_configuration(namespace, root_pem),
    ]
