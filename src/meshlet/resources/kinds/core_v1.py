"""Core ``v1`` kinds: Namespace, ServiceAccount, Service, Pod, Secret, ConfigMap.

Each schema covers every field the Kubernetes API defines for the kind (spec and
status), so that what ``kubectl`` or the API server prints decodes here unchanged.
The pod types live in ``kinds.pod`` and the volumes in ``kinds.volumes``.
"""

from __future__ import annotations

from meshlet.resources.kinds._registry import KindInfo
from meshlet.resources.kinds.meta import CONDITION, TIME, top_level
from meshlet.resources.kinds.pod import POD_SPEC, POD_STATUS
from meshlet.resources.kinds.volumes import LOCAL_OBJECT_REFERENCE
from meshlet.resources.schema import BOOL, INT, INT_OR_STRING, STRING, ListOf, MapOf, Obj

__all__ = ["CONFIG_MAP", "KINDS", "NAMESPACE", "POD", "SECRET", "SERVICE", "SERVICE_ACCOUNT"]

# --- Namespace -----------------------------------------------------------------------

NAMESPACE_CONDITION = Obj(
    "NamespaceCondition",
    {
        "lastTransitionTime": TIME,
        "message": STRING,
        "reason": STRING,
        "status": STRING,
        "type": STRING,
    },
    required=frozenset({"status", "type"}),
)

NAMESPACE = KindInfo(
    group="",
    versions=("v1",),
    kind="Namespace",
    plural="namespaces",
    namespaced=False,
    short_names=("ns",),
    schema=top_level(
        "Namespace",
        spec=Obj("NamespaceSpec", {"finalizers": ListOf(STRING)}),
        status=Obj(
            "NamespaceStatus",
            {"conditions": ListOf(NAMESPACE_CONDITION), "phase": STRING},  # Active, Terminating
        ),
    ),
)

# --- ServiceAccount ------------------------------------------------------------------

OBJECT_REFERENCE = Obj(
    "ObjectReference",
    {
        "apiVersion": STRING,
        "fieldPath": STRING,
        "kind": STRING,
        "name": STRING,
        "namespace": STRING,
        "resourceVersion": STRING,
        "uid": STRING,
    },
)

SERVICE_ACCOUNT = KindInfo(
    group="",
    versions=("v1",),
    kind="ServiceAccount",
    plural="serviceaccounts",
    namespaced=True,
    short_names=("sa",),
    schema=top_level(
        "ServiceAccount",
        automountServiceAccountToken=BOOL,
        imagePullSecrets=ListOf(LOCAL_OBJECT_REFERENCE),
        secrets=ListOf(OBJECT_REFERENCE),
    ),
)

# --- Service -------------------------------------------------------------------------

SERVICE_PORT = Obj(
    "ServicePort",
    {
        "name": STRING,  # required (and unique) when the Service has more than one port
        "protocol": STRING,  # TCP (the default), UDP or SCTP
        "appProtocol": STRING,
        "port": INT,
        "targetPort": INT_OR_STRING,  # a number, or the name of a container port
        "nodePort": INT,
    },
    required=frozenset({"port"}),
)

SESSION_AFFINITY_CONFIG = Obj(
    "SessionAffinityConfig",
    {"clientIP": Obj("ClientIPConfig", {"timeoutSeconds": INT})},
)

SERVICE_SPEC = Obj(
    "ServiceSpec",
    {
        "type": STRING,  # ClusterIP (the default), NodePort, LoadBalancer or ExternalName
        "selector": MapOf(STRING),
        "ports": ListOf(SERVICE_PORT),
        "clusterIP": STRING,  # an address, or "None" for a headless Service
        "clusterIPs": ListOf(STRING),
        "ipFamilies": ListOf(STRING),
        "ipFamilyPolicy": STRING,
        "externalIPs": ListOf(STRING),
        "externalName": STRING,
        "externalTrafficPolicy": STRING,
        "internalTrafficPolicy": STRING,
        "trafficDistribution": STRING,
        "sessionAffinity": STRING,
        "sessionAffinityConfig": SESSION_AFFINITY_CONFIG,
        "publishNotReadyAddresses": BOOL,
        "healthCheckNodePort": INT,
        "allocateLoadBalancerNodePorts": BOOL,
        "loadBalancerClass": STRING,
        "loadBalancerIP": STRING,
        "loadBalancerSourceRanges": ListOf(STRING),
    },
)

PORT_STATUS = Obj(
    "PortStatus",
    {"error": STRING, "port": INT, "protocol": STRING},
    required=frozenset({"port", "protocol"}),
)

LOAD_BALANCER_INGRESS = Obj(
    "LoadBalancerIngress",
    {"hostname": STRING, "ip": STRING, "ipMode": STRING, "ports": ListOf(PORT_STATUS)},
)

SERVICE_STATUS = Obj(
    "ServiceStatus",
    {
        "conditions": ListOf(CONDITION),
        "loadBalancer": Obj("LoadBalancerStatus", {"ingress": ListOf(LOAD_BALANCER_INGRESS)}),
    },
)

SERVICE = KindInfo(
    group="",
    versions=("v1",),
    kind="Service",
    plural="services",
    namespaced=True,
    short_names=("svc",),
    schema=top_level("Service", spec=SERVICE_SPEC, status=SERVICE_STATUS),
)

# --- Pod -----------------------------------------------------------------------------

POD = KindInfo(
    group="",
    versions=("v1",),
    kind="Pod",
    plural="pods",
    namespaced=True,
    short_names=("po",),
    schema=top_level("Pod", spec=POD_SPEC, status=POD_STATUS),
)

# --- Secret and ConfigMap ------------------------------------------------------------

SECRET = KindInfo(
    group="",
    versions=("v1",),
    kind="Secret",
    plural="secrets",
    namespaced=True,
    schema=top_level(
        "Secret",
        type=STRING,  # Opaque (the default), kubernetes.io/tls, …
        data=MapOf(STRING),  # base64 of the bytes
        stringData=MapOf(STRING),  # plain text, merged into data (and winning) on write
        immutable=BOOL,
    ),
)

CONFIG_MAP = KindInfo(
    group="",
    versions=("v1",),
    kind="ConfigMap",
    plural="configmaps",
    namespaced=True,
    short_names=("cm",),
    schema=top_level(
        "ConfigMap",
        data=MapOf(STRING),  # UTF-8 text
        binaryData=MapOf(STRING),  # base64 of the bytes
        immutable=BOOL,
    ),
)

KINDS: tuple[KindInfo, ...] = (NAMESPACE, SERVICE_ACCOUNT, SERVICE, POD, SECRET, CONFIG_MAP)
