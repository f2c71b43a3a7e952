"""Istio kinds: Sidecar, PeerAuthentication and DestinationRule.

Written from Istio's published CRDs (``networking.istio.io`` Sidecar and
DestinationRule served as v1alpha3, v1beta1 and v1; ``security.istio.io``
PeerAuthentication as v1beta1 and v1 — every version has the same schema). Types
are declared bottom-up, one constant per protobuf message, and shared where the
API shares the message (``ConnectionPoolSettings`` in Sidecar and DestinationRule,
``ServerTLSSettings``, ``WorkloadSelector``, ``IstioStatus``).

How the CRDs spell things, and how they read here:

- ``google.protobuf.Duration`` is a string (``"10s"``) with the CEL rule "must be a
  valid duration greater than 1ms": ``DURATION`` (validation checks the rule);
- ``uint32``/``int32``/``uint64`` are integers and ``double`` a number; the
  ``google.protobuf.*Value`` wrappers are the same types, nullable;
- ``map<string, …>`` (``additionalProperties``) is a ``MapOf``;
- ``x-kubernetes-int-or-string`` is ``INT_OR_STRING``;
- the ``status`` object is ``x-kubernetes-preserve-unknown-fields``: its listed
  fields are checked, others kept (``Obj(preserve_unknown=True)``).

``required`` follows the CRDs, except for fields whose absence Istio's own
validation reports with its own message, which ``istioctl analyze`` prints and so
must meshlet: a Sidecar ingress listener's ``port`` ("sidecar: port is required for
ingress listeners"), an egress listener's ``hosts`` ("sidecar: egress listener must
contain at least one host") and a DestinationRule's ``host``. ``OPTIONAL_IN_MESHLET``
lists them for the conformance test.
"""

from __future__ import annotations

from typing import Final

from meshlet.resources.kinds._registry import KindInfo
from meshlet.resources.kinds.meta import top_level
from meshlet.resources.schema import (
    BOOL,
    INT,
    INT_OR_STRING,
    NUMBER,
    STRING,
    Enum,
    ListOf,
    MapOf,
    Obj,
)

__all__ = [
    "CAPTURE_MODE",
    "CLIENT_TLS_SETTINGS",
    "CONNECTION_POOL_SETTINGS",
    "DESTINATION_RULE",
    "DURATION",
    "ISTIO_EGRESS_LISTENER",
    "ISTIO_INGRESS_LISTENER",
    "ISTIO_STATUS",
    "KINDS",
    "OPTIONAL_IN_MESHLET",
    "PEER_AUTHENTICATION",
    "SERVER_TLS_SETTINGS",
    "SIDECAR",
    "SIDECAR_PORT",
    "TLS_PROTOCOL",
    "TRAFFIC_POLICY",
]

DURATION: Final = STRING  # google.protobuf.Duration, e.g. "1.5s"; CEL: at least 1ms

# --- shared: status ----------------------------------------------------------------------

ISTIO_CONDITION = Obj(
    "IstioCondition",
    {
        "lastProbeTime": STRING,
        "lastTransitionTime": STRING,
        "message": STRING,
        "observedGeneration": INT_OR_STRING,
        "reason": STRING,
        "status": STRING,
        "type": STRING,
    },
)

ANALYSIS_MESSAGE_TYPE = Obj("AnalysisMessageBase.Type", {"code": STRING, "name": STRING})

ANALYSIS_MESSAGE_BASE = Obj(
    "AnalysisMessageBase",
    {
        "documentationUrl": STRING,
        "level": Enum(("UNKNOWN", "ERROR", "WARNING", "INFO")),
        "type": ANALYSIS_MESSAGE_TYPE,
    },
)

ISTIO_STATUS = Obj(
    "IstioStatus",
    {
        "conditions": ListOf(ISTIO_CONDITION),
        "observedGeneration": INT_OR_STRING,
        "validationMessages": ListOf(ANALYSIS_MESSAGE_BASE),
    },
    preserve_unknown=True,
)

# --- shared: connection pools (networking/v1alpha3/destination_rule.proto) ----------------

TCP_KEEPALIVE = Obj(
    "ConnectionPoolSettings.TCPSettings.TcpKeepalive",
    {"interval": DURATION, "probes": INT, "time": DURATION},
)

TCP_SETTINGS = Obj(
    "ConnectionPoolSettings.TCPSettings",
    {
        "connectTimeout": DURATION,
        "idleTimeout": DURATION,
        "maxConnectionDuration": DURATION,
        "maxConnections": INT,
        "tcpKeepalive": TCP_KEEPALIVE,
    },
)

H2_UPGRADE_POLICY = Enum(("DEFAULT", "DO_NOT_UPGRADE", "UPGRADE"))

HTTP2_KEEPALIVE = Obj(
    "ConnectionPoolSettings.HTTPSettings.Http2KeepAlive",
    {"interval": DURATION, "timeout": DURATION},
)

HTTP_SETTINGS = Obj(
    "ConnectionPoolSettings.HTTPSettings",
    {
        "h2UpgradePolicy": H2_UPGRADE_POLICY,
        "http1MaxPendingRequests": INT,
        "http2KeepAlive": HTTP2_KEEPALIVE,
        "http2MaxRequests": INT,
        "idleTimeout": DURATION,
        "maxConcurrentStreams": INT,
        "maxRequestsPerConnection": INT,
        "maxRetries": INT,
        "useClientProtocol": BOOL,
    },
)

CONNECTION_POOL_SETTINGS = Obj(
    "ConnectionPoolSettings", {"http": HTTP_SETTINGS, "tcp": TCP_SETTINGS}
)

# --- shared: TLS --------------------------------------------------------------------------

TLS_PROTOCOL = Enum(("TLS_AUTO", "TLSV1_0", "TLSV1_1", "TLSV1_2", "TLSV1_3"))

SERVER_TLS_MODE = Enum(
    ("PASSTHROUGH", "SIMPLE", "MUTUAL", "AUTO_PASSTHROUGH", "ISTIO_MUTUAL", "OPTIONAL_MUTUAL")
)

TLS_CERTIFICATE = Obj(
    "ServerTLSSettings.TLSCertificate",
    {"caCertificates": STRING, "privateKey": STRING, "serverCertificate": STRING},
)

SERVER_TLS_SETTINGS = Obj(
    "ServerTLSSettings",
    {
        "caCertCredentialName": STRING,
        "caCertificates": STRING,
        "caCrl": STRING,
        "cipherSuites": ListOf(STRING),
        "credentialName": STRING,
        "credentialNames": ListOf(STRING),  # at most 2
        "ecdhCurves": ListOf(STRING),
        "httpsRedirect": BOOL,
        "insecureSkipVerify": BOOL,  # BoolValue
        "maxProtocolVersion": TLS_PROTOCOL,
        "minProtocolVersion": TLS_PROTOCOL,
        "mode": SERVER_TLS_MODE,
        "privateKey": STRING,
        "serverCertificate": STRING,
        "subjectAltNames": ListOf(STRING),
        "tlsCertificates": ListOf(TLS_CERTIFICATE),  # at most 2
        "verifyCertificateHash": ListOf(STRING),
        "verifyCertificateSpki": ListOf(STRING),
    },
)

CLIENT_TLS_SETTINGS = Obj(
    "ClientTLSSettings",
    {
        "caCertificates": STRING,
        "caCrl": STRING,
        "clientCertificate": STRING,
        "credentialName": STRING,
        "insecureSkipVerify": BOOL,  # BoolValue
        "mode": Enum(("DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL")),
        "privateKey": STRING,
        "sni": STRING,
        "subjectAltNames": ListOf(STRING),
    },
)

# --- shared: selectors --------------------------------------------------------------------

WORKLOAD_SELECTOR_LABELS = Obj(
    "networking.WorkloadSelector",
    {"labels": MapOf(STRING)},  # at most 256; values at most 63 characters
)

MATCH_LABELS_SELECTOR = Obj(
    "type.v1beta1.WorkloadSelector",
    {"matchLabels": MapOf(STRING)},  # at most 4096; values at most 63 characters
)

# --- Sidecar (networking/v1alpha3/sidecar.proto) -----------------------------------------

CAPTURE_MODE = Enum(("DEFAULT", "IPTABLES", "NONE"))

SIDECAR_PORT = Obj(
    "SidecarPort",
    {"name": STRING, "number": INT, "protocol": STRING, "targetPort": INT},
)

ISTIO_INGRESS_LISTENER = Obj(
    "IstioIngressListener",
    {
        "bind": STRING,
        "captureMode": CAPTURE_MODE,
        "connectionPool": CONNECTION_POOL_SETTINGS,
        "defaultEndpoint": STRING,
        "port": SIDECAR_PORT,  # required by the CRD: see the module docstring
        "tls": SERVER_TLS_SETTINGS,
    },
)

ISTIO_EGRESS_LISTENER = Obj(
    "IstioEgressListener",
    {
        "bind": STRING,
        "captureMode": CAPTURE_MODE,
        "hosts": ListOf(STRING),  # required by the CRD: see the module docstring
        "port": SIDECAR_PORT,
    },
)

PORT_SELECTOR = Obj("PortSelector", {"number": INT})

DESTINATION = Obj(
    "Destination",
    {"host": STRING, "port": PORT_SELECTOR, "subset": STRING},
    required=frozenset({"host"}),
)

OUTBOUND_TRAFFIC_POLICY = Obj(
    "OutboundTrafficPolicy",
    {"egressProxy": DESTINATION, "mode": Enum(("REGISTRY_ONLY", "ALLOW_ANY"))},
)

SIDECAR_SPEC = Obj(
    "Sidecar",
    {
        "egress": ListOf(ISTIO_EGRESS_LISTENER),
        "inboundConnectionPool": CONNECTION_POOL_SETTINGS,
        "ingress": ListOf(ISTIO_INGRESS_LISTENER),
        "outboundTrafficPolicy": OUTBOUND_TRAFFIC_POLICY,
        "workloadSelector": WORKLOAD_SELECTOR_LABELS,
    },
)

# --- PeerAuthentication (security/v1beta1/peer_authentication.proto) ---------------------

MTLS_MODE = Enum(("UNSET", "DISABLE", "PERMISSIVE", "STRICT"))

MUTUAL_TLS = Obj("PeerAuthentication.MutualTLS", {"mode": MTLS_MODE})

PEER_AUTHENTICATION_SPEC = Obj(
    "PeerAuthentication",
    {
        "mtls": MUTUAL_TLS,
        "portLevelMtls": MapOf(MUTUAL_TLS),  # keys are port numbers; at least one entry
        "selector": MATCH_LABELS_SELECTOR,
    },
)

# --- DestinationRule (networking/v1alpha3/destination_rule.proto) -------------------------

HTTP_COOKIE_ATTRIBUTE = Obj(
    "LoadBalancerSettings.ConsistentHashLB.HTTPCookie.Attribute",
    {"name": STRING, "value": STRING},
    required=frozenset({"name"}),
)

HTTP_COOKIE = Obj(
    "LoadBalancerSettings.ConsistentHashLB.HTTPCookie",
    {
        "attributes": ListOf(HTTP_COOKIE_ATTRIBUTE),
        "name": STRING,
        "path": STRING,
        "ttl": DURATION,
    },
    required=frozenset({"name"}),
)

MAGLEV = Obj("LoadBalancerSettings.ConsistentHashLB.MagLev", {"tableSize": INT})

RING_HASH = Obj("LoadBalancerSettings.ConsistentHashLB.RingHash", {"minimumRingSize": INT})

CONSISTENT_HASH_LB = Obj(
    "LoadBalancerSettings.ConsistentHashLB",
    {
        "httpCookie": HTTP_COOKIE,
        "httpHeaderName": STRING,
        "httpQueryParameterName": STRING,
        "maglev": MAGLEV,
        "minimumRingSize": INT,
        "ringHash": RING_HASH,
        "useSourceIp": BOOL,
    },
)

BACKEND_UTILIZATION_LB = Obj(
    "LoadBalancerSettings.BackendUtilizationLB",
    {
        "errorUtilizationPenaltyPercent": INT,
        "metricNamesForComputingUtilization": ListOf(STRING),
        "weightExpirationPeriod": DURATION,
        "weightStabilizationPeriod": DURATION,
        "weightUpdatePeriod": DURATION,
    },
)

LOCALITY_DISTRIBUTE = Obj(
    "LocalityLoadBalancerSetting.Distribute",
    {"from": STRING, "to": MapOf(INT)},
)

LOCALITY_FAILOVER = Obj(
    "LocalityLoadBalancerSetting.Failover",
    {"from": STRING, "to": STRING},
)

LOCALITY_LB_SETTING = Obj(
    "LocalityLoadBalancerSetting",
    {
        "distribute": ListOf(LOCALITY_DISTRIBUTE),
        "enabled": BOOL,  # BoolValue
        "failover": ListOf(LOCALITY_FAILOVER),
        "failoverPriority": ListOf(STRING),
    },
)

ZONE_AWARE_LB_SETTING = Obj(
    "ZoneAwareLoadBalancerSetting",
    {
        "enabled": BOOL,  # BoolValue
        "failover": ListOf(LOCALITY_FAILOVER),
        "failoverPriority": ListOf(STRING),
        "minClusterSize": INT,  # UInt64Value, at least 1
    },
)

WARMUP = Obj(
    "WarmupConfiguration",
    {
        "aggression": NUMBER,  # DoubleValue, at least 0
        "duration": DURATION,
        "minimumPercent": NUMBER,  # DoubleValue, 0..100
    },
    required=frozenset({"duration"}),
)

LOAD_BALANCER_SETTINGS = Obj(
    "LoadBalancerSettings",
    {
        "backendUtilization": BACKEND_UTILIZATION_LB,
        "consistentHash": CONSISTENT_HASH_LB,
        "localityLbSetting": LOCALITY_LB_SETTING,
        "simple": Enum(
            ("UNSPECIFIED", "LEAST_CONN", "RANDOM", "PASSTHROUGH", "ROUND_ROBIN", "LEAST_REQUEST")
        ),
        "warmup": WARMUP,
        "warmupDurationSecs": DURATION,  # deprecated: use warmup
        "zoneAwareLbSetting": ZONE_AWARE_LB_SETTING,
    },
)

OUTLIER_DETECTION = Obj(
    "OutlierDetection",
    {
        "baseEjectionTime": DURATION,
        "consecutive5xxErrors": INT,  # UInt32Value
        "consecutiveErrors": INT,  # deprecated
        "consecutiveGatewayErrors": INT,  # UInt32Value
        "consecutiveLocalOriginFailures": INT,  # UInt32Value
        "interval": DURATION,
        "maxEjectionPercent": INT,
        "minHealthPercent": INT,
        "outlierDetectionHttpErrorCodes": ListOf(INT),  # 100..599
        "splitExternalLocalOriginErrors": BOOL,
    },
)

PORT_TRAFFIC_POLICY = Obj(
    "TrafficPolicy.PortTrafficPolicy",
    {
        "connectionPool": CONNECTION_POOL_SETTINGS,
        "loadBalancer": LOAD_BALANCER_SETTINGS,
        "outlierDetection": OUTLIER_DETECTION,
        "port": PORT_SELECTOR,
        "tls": CLIENT_TLS_SETTINGS,
    },
)

PROXY_PROTOCOL = Obj("TrafficPolicy.ProxyProtocol", {"version": Enum(("V1", "V2"))})

RETRY_BUDGET = Obj(
    "TrafficPolicy.RetryBudget",
    {
        "budgetInterval": DURATION,
        "minRetryConcurrency": INT,
        "percent": NUMBER,  # DoubleValue, 0..100
    },
)

TUNNEL_SETTINGS = Obj(
    "TrafficPolicy.TunnelSettings",
    {"protocol": STRING, "targetHost": STRING, "targetPort": INT},
    required=frozenset({"targetHost", "targetPort"}),
)

TRAFFIC_POLICY = Obj(
    "TrafficPolicy",
    {
        "connectionPool": CONNECTION_POOL_SETTINGS,
        "loadBalancer": LOAD_BALANCER_SETTINGS,
        "outlierDetection": OUTLIER_DETECTION,
        "portLevelSettings": ListOf(PORT_TRAFFIC_POLICY),  # at most 4096
        "proxyProtocol": PROXY_PROTOCOL,
        "retryBudget": RETRY_BUDGET,
        "tls": CLIENT_TLS_SETTINGS,
        "tunnel": TUNNEL_SETTINGS,
    },
)

SUBSET = Obj(
    "Subset",
    {"labels": MapOf(STRING), "name": STRING, "trafficPolicy": TRAFFIC_POLICY},
    required=frozenset({"name"}),
)

DESTINATION_RULE_SPEC = Obj(
    "DestinationRule",
    {
        "exportTo": ListOf(STRING),
        "host": STRING,  # required by the CRD: see the module docstring
        "subsets": ListOf(SUBSET),
        "trafficPolicy": TRAFFIC_POLICY,
        "workloadSelector": MATCH_LABELS_SELECTOR,
    },
)

# --- the kinds ----------------------------------------------------------------------------

_NETWORKING_VERSIONS = ("v1alpha3", "v1beta1", "v1")

SIDECAR = KindInfo(
    group="networking.istio.io",
    versions=_NETWORKING_VERSIONS,
    kind="Sidecar",
    plural="sidecars",
    namespaced=True,
    schema=top_level("Sidecar", spec=SIDECAR_SPEC, status=ISTIO_STATUS),
)

PEER_AUTHENTICATION = KindInfo(
    group="security.istio.io",
    versions=("v1beta1", "v1"),
    kind="PeerAuthentication",
    plural="peerauthentications",
    namespaced=True,
    short_names=("pa",),
    schema=top_level("PeerAuthentication", spec=PEER_AUTHENTICATION_SPEC, status=ISTIO_STATUS),
)

DESTINATION_RULE = KindInfo(
    group="networking.istio.io",
    versions=_NETWORKING_VERSIONS,
    kind="DestinationRule",
    plural="destinationrules",
    namespaced=True,
    short_names=("dr",),
    schema=top_level("DestinationRule", spec=DESTINATION_RULE_SPEC, status=ISTIO_STATUS),
)

KINDS: tuple[KindInfo, ...] = (SIDECAR, PEER_AUTHENTICATION, DESTINATION_RULE)

# Fields the CRDs mark required that meshlet leaves to Istio's validation messages
# (kind, path of the object in the spec with "[]" for list items, field).
OPTIONAL_IN_MESHLET: frozenset[tuple[str, str, str]] = frozenset(
    {
        ("Sidecar", "spec.ingress[]", "port"),
        ("Sidecar", "spec.egress[]", "hosts"),
        ("DestinationRule", "spec", "host"),
    }
)
