"""Core ``v1`` pod types: ``PodSpec`` and what it holds, shared by Pod and Deployment.

Read top-down from the bottom of the file: a pod template (``POD_TEMPLATE_SPEC``) is
metadata and a ``PodSpec``; a ``PodSpec`` holds containers, volumes, scheduling and
security settings; a ``Container`` holds its image, command, environment, ports,
probes, resources and mounts. ``POD_STATUS`` is what the kubelet reports back.
"""

from __future__ import annotations

from meshlet.resources.kinds.meta import LABEL_SELECTOR, OBJECT_META, RESOURCE_LIST, TIME
from meshlet.resources.kinds.volumes import (
    LOCAL_OBJECT_REFERENCE,
    OBJECT_FIELD_SELECTOR,
    RESOURCE_FIELD_SELECTOR,
    VOLUME,
)
from meshlet.resources.schema import (
    BOOL,
    INT,
    INT_OR_STRING,
    STRING,
    ListOf,
    MapOf,
    Obj,
    SchemaType,
)

__all__ = ["CONTAINER", "POD_SPEC", "POD_STATUS", "POD_TEMPLATE_SPEC"]

# --- environment ---------------------------------------------------------------------

CONFIG_MAP_KEY_SELECTOR = Obj(
    "ConfigMapKeySelector",
    {"key": STRING, "name": STRING, "optional": BOOL},
    required=frozenset({"key"}),
)

SECRET_KEY_SELECTOR = Obj(
    "SecretKeySelector",
    {"key": STRING, "name": STRING, "optional": BOOL},
    required=frozenset({"key"}),
)

FILE_KEY_SELECTOR = Obj(
    "FileKeySelector",
    {"key": STRING, "optional": BOOL, "path": STRING, "volumeName": STRING},
    required=frozenset({"key", "path", "volumeName"}),
)

ENV_VAR_SOURCE = Obj(
    "EnvVarSource",
    {
        "configMapKeyRef": CONFIG_MAP_KEY_SELECTOR,
        "fieldRef": OBJECT_FIELD_SELECTOR,
        "fileKeyRef": FILE_KEY_SELECTOR,
        "resourceFieldRef": RESOURCE_FIELD_SELECTOR,
        "secretKeyRef": SECRET_KEY_SELECTOR,
    },
)

ENV_VAR = Obj(
    "EnvVar",
    {"name": STRING, "value": STRING, "valueFrom": ENV_VAR_SOURCE},
    required=frozenset({"name"}),
)

CONFIG_MAP_ENV_SOURCE = Obj("ConfigMapEnvSource", {"name": STRING, "optional": BOOL})
SECRET_ENV_SOURCE = Obj("SecretEnvSource", {"name": STRING, "optional": BOOL})

ENV_FROM_SOURCE = Obj(
    "EnvFromSource",
    {"configMapRef": CONFIG_MAP_ENV_SOURCE, "prefix": STRING, "secretRef": SECRET_ENV_SOURCE},
)

# --- probes and lifecycle hooks ------------------------------------------------------

EXEC_ACTION = Obj("ExecAction", {"command": ListOf(STRING)})

HTTP_HEADER = Obj(
    "HTTPHeader",
    {"name": STRING, "value": STRING},
    required=frozenset({"name", "value"}),
)

HTTP_GET_ACTION = Obj(
    "HTTPGetAction",
    {
        "host": STRING,
        "httpHeaders": ListOf(HTTP_HEADER),
        "path": STRING,
        "port": INT_OR_STRING,
        "scheme": STRING,  # HTTP or HTTPS
    },
    required=frozenset({"port"}),
)

TCP_SOCKET_ACTION = Obj(
    "TCPSocketAction",
    {"host": STRING, "port": INT_OR_STRING},
    required=frozenset({"port"}),
)

GRPC_ACTION = Obj(
    "GRPCAction",
    {"port": INT, "service": STRING},
    required=frozenset({"port"}),
)

SLEEP_ACTION = Obj("SleepAction", {"seconds": INT}, required=frozenset({"seconds"}))

PROBE = Obj(
    "Probe",
    {
        "exec": EXEC_ACTION,
        "failureThreshold": INT,
        "grpc": GRPC_ACTION,
        "httpGet": HTTP_GET_ACTION,
        "initialDelaySeconds": INT,
        "periodSeconds": INT,
        "successThreshold": INT,
        "tcpSocket": TCP_SOCKET_ACTION,
        "terminationGracePeriodSeconds": INT,
        "timeoutSeconds": INT,
    },
)

LIFECYCLE_HANDLER = Obj(
    "LifecycleHandler",
    {
        "exec": EXEC_ACTION,
        "httpGet": HTTP_GET_ACTION,
        "sleep": SLEEP_ACTION,
        "tcpSocket": TCP_SOCKET_ACTION,
    },
)

LIFECYCLE = Obj(
    "Lifecycle",
    {"postStart": LIFECYCLE_HANDLER, "preStop": LIFECYCLE_HANDLER, "stopSignal": STRING},
)

# --- resources -----------------------------------------------------------------------

RESOURCE_CLAIM = Obj(
    "ResourceClaim",
    {"name": STRING, "request": STRING},
    required=frozenset({"name"}),
)

RESOURCE_REQUIREMENTS = Obj(
    "ResourceRequirements",
    {"claims": ListOf(RESOURCE_CLAIM), "limits": RESOURCE_LIST, "requests": RESOURCE_LIST},
)

CONTAINER_RESIZE_POLICY = Obj(
    "ContainerResizePolicy",
    {"resourceName": STRING, "restartPolicy": STRING},
    required=frozenset({"resourceName", "restartPolicy"}),
)

CONTAINER_RESTART_RULE_ON_EXIT_CODES = Obj(
    "ContainerRestartRuleOnExitCodes",
    {"operator": STRING, "values": ListOf(INT)},
    required=frozenset({"operator"}),
)

CONTAINER_RESTART_RULE = Obj(
    "ContainerRestartRule",
    {"action": STRING, "exitCodes": CONTAINER_RESTART_RULE_ON_EXIT_CODES},
    required=frozenset({"action"}),
)

# --- security contexts ---------------------------------------------------------------

APP_ARMOR_PROFILE = Obj(
    "AppArmorProfile",
    {"localhostProfile": STRING, "type": STRING},
    required=frozenset({"type"}),
)

SECCOMP_PROFILE = Obj(
    "SeccompProfile",
    {"localhostProfile": STRING, "type": STRING},
    required=frozenset({"type"}),
)

SE_LINUX_OPTIONS = Obj(
    "SELinuxOptions",
    {"level": STRING, "role": STRING, "type": STRING, "user": STRING},
)

WINDOWS_SECURITY_CONTEXT_OPTIONS = Obj(
    "WindowsSecurityContextOptions",
    {
        "gmsaCredentialSpec": STRING,
        "gmsaCredentialSpecName": STRING,
        "hostProcess": BOOL,
        "runAsUserName": STRING,
    },
)

CAPABILITIES = Obj("Capabilities", {"add": ListOf(STRING), "drop": ListOf(STRING)})

SECURITY_CONTEXT = Obj(
    "SecurityContext",
    {
        "allowPrivilegeEscalation": BOOL,
        "appArmorProfile": APP_ARMOR_PROFILE,
        "capabilities": CAPABILITIES,
        "privileged": BOOL,
        "procMount": STRING,
        "readOnlyRootFilesystem": BOOL,
        "runAsGroup": INT,
        "runAsNonRoot": BOOL,
        "runAsUser": INT,
        "seLinuxOptions": SE_LINUX_OPTIONS,
        "seccompProfile": SECCOMP_PROFILE,
        "windowsOptions": WINDOWS_SECURITY_CONTEXT_OPTIONS,
    },
)

SYSCTL = Obj("Sysctl", {"name": STRING, "value": STRING}, required=frozenset({"name", "value"}))

POD_SECURITY_CONTEXT = Obj(
    "PodSecurityContext",
    {
        "appArmorProfile": APP_ARMOR_PROFILE,
        "fsGroup": INT,
        "fsGroupChangePolicy": STRING,
        "runAsGroup": INT,
        "runAsNonRoot": BOOL,
        "runAsUser": INT,
        "seLinuxChangePolicy": STRING,
        "seLinuxOptions": SE_LINUX_OPTIONS,
        "seccompProfile": SECCOMP_PROFILE,
        "supplementalGroups": ListOf(INT),
        "supplementalGroupsPolicy": STRING,
        "sysctls": ListOf(SYSCTL),
        "windowsOptions": WINDOWS_SECURITY_CONTEXT_OPTIONS,
    },
)

# --- containers ----------------------------------------------------------------------

CONTAINER_PORT = Obj(
    "ContainerPort",
    {
        "containerPort": INT,
        "hostIP": STRING,
        "hostPort": INT,
        "name": STRING,
        "protocol": STRING,  # TCP (the default), UDP or SCTP
    },
    required=frozenset({"containerPort"}),
)

VOLUME_MOUNT = Obj(
    "VolumeMount",
    {
        "mountPath": STRING,
        "mountPropagation": STRING,
        "name": STRING,
        "readOnly": BOOL,
        "recursiveReadOnly": STRING,
        "subPath": STRING,
        "subPathExpr": STRING,
    },
    required=frozenset({"mountPath", "name"}),
)

VOLUME_DEVICE = Obj(
    "VolumeDevice",
    {"devicePath": STRING, "name": STRING},
    required=frozenset({"devicePath", "name"}),
)

_CONTAINER_FIELDS: dict[str, SchemaType] = {
    "name": STRING,
    "image": STRING,
    "imagePullPolicy": STRING,  # Always, IfNotPresent or Never
    "command": ListOf(STRING),
    "args": ListOf(STRING),
    "workingDir": STRING,
    "env": ListOf(ENV_VAR),
    "envFrom": ListOf(ENV_FROM_SOURCE),
    "ports": ListOf(CONTAINER_PORT),
    "volumeMounts": ListOf(VOLUME_MOUNT),
    "volumeDevices": ListOf(VOLUME_DEVICE),
    "resources": RESOURCE_REQUIREMENTS,
    "resizePolicy": ListOf(CONTAINER_RESIZE_POLICY),
    "restartPolicy": STRING,
    "restartPolicyRules": ListOf(CONTAINER_RESTART_RULE),
    "livenessProbe": PROBE,
    "readinessProbe": PROBE,
    "startupProbe": PROBE,
    "lifecycle": LIFECYCLE,
    "securityContext": SECURITY_CONTEXT,
    "stdin": BOOL,
    "stdinOnce": BOOL,
    "tty": BOOL,
    "terminationMessagePath": STRING,
    "terminationMessagePolicy": STRING,
}

CONTAINER = Obj("Container", _CONTAINER_FIELDS, required=frozenset({"name"}))

EPHEMERAL_CONTAINER = Obj(  # a debugging container added to a running pod
    "EphemeralContainer",
    {**_CONTAINER_FIELDS, "targetContainerName": STRING},
    required=frozenset({"name"}),
)

# --- scheduling ----------------------------------------------------------------------

NODE_SELECTOR_REQUIREMENT = Obj(
    "NodeSelectorRequirement",
    {"key": STRING, "operator": STRING, "values": ListOf(STRING)},
    required=frozenset({"key", "operator"}),
)

NODE_SELECTOR_TERM = Obj(
    "NodeSelectorTerm",
    {
        "matchExpressions": ListOf(NODE_SELECTOR_REQUIREMENT),
        "matchFields": ListOf(NODE_SELECTOR_REQUIREMENT),
    },
)

NODE_SELECTOR = Obj(
    "NodeSelector",
    {"nodeSelectorTerms": ListOf(NODE_SELECTOR_TERM)},
    required=frozenset({"nodeSelectorTerms"}),
)

PREFERRED_SCHEDULING_TERM = Obj(
    "PreferredSchedulingTerm",
    {"preference": NODE_SELECTOR_TERM, "weight": INT},
    required=frozenset({"preference", "weight"}),
)

NODE_AFFINITY = Obj(
    "NodeAffinity",
    {
        "preferredDuringSchedulingIgnoredDuringExecution": ListOf(PREFERRED_SCHEDULING_TERM),
        "requiredDuringSchedulingIgnoredDuringExecution": NODE_SELECTOR,
    },
)

POD_AFFINITY_TERM = Obj(
    "PodAffinityTerm",
    {
        "labelSelector": LABEL_SELECTOR,
        "matchLabelKeys": ListOf(STRING),
        "mismatchLabelKeys": ListOf(STRING),
        "namespaceSelector": LABEL_SELECTOR,
        "namespaces": ListOf(STRING),
        "topologyKey": STRING,
    },
    required=frozenset({"topologyKey"}),
)

WEIGHTED_POD_AFFINITY_TERM = Obj(
    "WeightedPodAffinityTerm",
    {"podAffinityTerm": POD_AFFINITY_TERM, "weight": INT},
    required=frozenset({"podAffinityTerm", "weight"}),
)

POD_AFFINITY = Obj(
    "PodAffinity",
    {
        "preferredDuringSchedulingIgnoredDuringExecution": ListOf(WEIGHTED_POD_AFFINITY_TERM),
        "requiredDuringSchedulingIgnoredDuringExecution": ListOf(POD_AFFINITY_TERM),
    },
)

POD_ANTI_AFFINITY = Obj(
    "PodAntiAffinity",
    {
        "preferredDuringSchedulingIgnoredDuringExecution": ListOf(WEIGHTED_POD_AFFINITY_TERM),
        "requiredDuringSchedulingIgnoredDuringExecution": ListOf(POD_AFFINITY_TERM),
    },
)

AFFINITY = Obj(
    "Affinity",
    {
        "nodeAffinity": NODE_AFFINITY,
        "podAffinity": POD_AFFINITY,
        "podAntiAffinity": POD_ANTI_AFFINITY,
    },
)

TOLERATION = Obj(
    "Toleration",
    {
        "effect": STRING,
        "key": STRING,
        "operator": STRING,
        "tolerationSeconds": INT,
        "value": STRING,
    },
)

TOPOLOGY_SPREAD_CONSTRAINT = Obj(
    "TopologySpreadConstraint",
    {
        "labelSelector": LABEL_SELECTOR,
        "matchLabelKeys": ListOf(STRING),
        "maxSkew": INT,
        "minDomains": INT,
        "nodeAffinityPolicy": STRING,
        "nodeTaintsPolicy": STRING,
        "topologyKey": STRING,
        "whenUnsatisfiable": STRING,
    },
    required=frozenset({"maxSkew", "topologyKey", "whenUnsatisfiable"}),
)

POD_SCHEDULING_GATE = Obj("PodSchedulingGate", {"name": STRING}, required=frozenset({"name"}))

POD_SCHEDULING_GROUP = Obj("PodSchedulingGroup", {"podGroupName": STRING})

POD_READINESS_GATE = Obj(
    "PodReadinessGate",
    {"conditionType": STRING},
    required=frozenset({"conditionType"}),
)

# --- the rest of the pod spec --------------------------------------------------------

POD_DNS_CONFIG_OPTION = Obj("PodDNSConfigOption", {"name": STRING, "value": STRING})

POD_DNS_CONFIG = Obj(
    "PodDNSConfig",
    {
        "nameservers": ListOf(STRING),
        "options": ListOf(POD_DNS_CONFIG_OPTION),
        "searches": ListOf(STRING),
    },
)

HOST_ALIAS = Obj(
    "HostAlias",
    {"hostnames": ListOf(STRING), "ip": STRING},
    required=frozenset({"ip"}),
)

POD_OS = Obj("PodOS", {"name": STRING}, required=frozenset({"name"}))

POD_RESOURCE_CLAIM = Obj(
    "PodResourceClaim",
    {"name": STRING, "resourceClaimName": STRING, "resourceClaimTemplateName": STRING},
    required=frozenset({"name"}),
)

POD_SPEC = Obj(
    "PodSpec",
    {
        # what runs
        "containers": ListOf(CONTAINER),
        "initContainers": ListOf(CONTAINER),
        "ephemeralContainers": ListOf(EPHEMERAL_CONTAINER),
        "volumes": ListOf(VOLUME),
        "restartPolicy": STRING,  # Always, OnFailure or Never
        "terminationGracePeriodSeconds": INT,
        "activeDeadlineSeconds": INT,
        "resources": RESOURCE_REQUIREMENTS,
        "resourceClaims": ListOf(POD_RESOURCE_CLAIM),
        "overhead": RESOURCE_LIST,
        "runtimeClassName": STRING,
        "os": POD_OS,
        # identity and security
        "serviceAccountName": STRING,
        "serviceAccount": STRING,  # deprecated spelling of serviceAccountName
        "automountServiceAccountToken": BOOL,
        "securityContext": POD_SECURITY_CONTEXT,
        "imagePullSecrets": ListOf(LOCAL_OBJECT_REFERENCE),
        "hostUsers": BOOL,
        "hostIPC": BOOL,
        "hostNetwork": BOOL,
        "hostPID": BOOL,
        "shareProcessNamespace": BOOL,
        # names and DNS
        "hostname": STRING,
        "hostnameOverride": STRING,
        "subdomain": STRING,
        "setHostnameAsFQDN": BOOL,
        "hostAliases": ListOf(HOST_ALIAS),
        "dnsPolicy": STRING,
        "dnsConfig": POD_DNS_CONFIG,
        "enableServiceLinks": BOOL,
        # scheduling
        "nodeName": STRING,
        "nodeSelector": MapOf(STRING),
        "affinity": AFFINITY,
        "tolerations": ListOf(TOLERATION),
        "topologySpreadConstraints": ListOf(TOPOLOGY_SPREAD_CONSTRAINT),
        "schedulerName": STRING,
        "schedulingGates": ListOf(POD_SCHEDULING_GATE),
        "schedulingGroup": POD_SCHEDULING_GROUP,
        "priority": INT,
        "priorityClassName": STRING,
        "preemptionPolicy": STRING,
        "readinessGates": ListOf(POD_READINESS_GATE),
    },
    required=frozenset({"containers"}),
)

POD_TEMPLATE_SPEC = Obj("PodTemplateSpec", {"metadata": OBJECT_META, "spec": POD_SPEC})

# --- status, as the kubelet reports it ------------------------------------------------

CONTAINER_STATE_RUNNING = Obj("ContainerStateRunning", {"startedAt": TIME})

CONTAINER_STATE_TERMINATED = Obj(
    "ContainerStateTerminated",
    {
        "containerID": STRING,
        "exitCode": INT,
        "finishedAt": TIME,
        "message": STRING,
        "reason": STRING,
        "signal": INT,
        "startedAt": TIME,
    },
    required=frozenset({"exitCode"}),
)

CONTAINER_STATE_WAITING = Obj("ContainerStateWaiting", {"message": STRING, "reason": STRING})

CONTAINER_STATE = Obj(
    "ContainerState",
    {
        "running": CONTAINER_STATE_RUNNING,
        "terminated": CONTAINER_STATE_TERMINATED,
        "waiting": CONTAINER_STATE_WAITING,
    },
)

LINUX_CONTAINER_USER = Obj(
    "LinuxContainerUser",
    {"gid": INT, "supplementalGroups": ListOf(INT), "uid": INT},
    required=frozenset({"gid", "uid"}),
)

CONTAINER_USER = Obj("ContainerUser", {"linux": LINUX_CONTAINER_USER})

RESOURCE_HEALTH = Obj(
    "ResourceHealth",
    {"health": STRING, "message": STRING, "resourceID": STRING},
    required=frozenset({"resourceID"}),
)

RESOURCE_STATUS = Obj(
    "ResourceStatus",
    {"name": STRING, "resources": ListOf(RESOURCE_HEALTH)},
    required=frozenset({"name"}),
)

IMAGE_VOLUME_STATUS = Obj(
    "ImageVolumeStatus",
    {"imageRef": STRING},
    required=frozenset({"imageRef"}),
)

VOLUME_STATUS = Obj("VolumeStatus", {"image": IMAGE_VOLUME_STATUS})

VOLUME_MOUNT_STATUS = Obj(
    "VolumeMountStatus",
    {
        "mountPath": STRING,
        "name": STRING,
        "readOnly": BOOL,
        "recursiveReadOnly": STRING,
        "volumeStatus": VOLUME_STATUS,
    },
    required=frozenset({"mountPath", "name"}),
)

CONTAINER_STATUS = Obj(
    "ContainerStatus",
    {
        "allocatedResources": RESOURCE_LIST,
        "allocatedResourcesStatus": ListOf(RESOURCE_STATUS),
        "containerID": STRING,
        "image": STRING,
        "imageID": STRING,
        "lastState": CONTAINER_STATE,
        "name": STRING,
        "ready": BOOL,
        "resources": RESOURCE_REQUIREMENTS,
        "restartCount": INT,
        "started": BOOL,
        "state": CONTAINER_STATE,
        "stopSignal": STRING,
        "user": CONTAINER_USER,
        "volumeMounts": ListOf(VOLUME_MOUNT_STATUS),
    },
    required=frozenset({"image", "imageID", "name", "ready", "restartCount"}),
)

POD_CONDITION = Obj(
    "PodCondition",
    {
        "lastProbeTime": TIME,
        "lastTransitionTime": TIME,
        "message": STRING,
        "observedGeneration": INT,
        "reason": STRING,
        "status": STRING,
        "type": STRING,
    },
    required=frozenset({"status", "type"}),
)

HOST_IP = Obj("HostIP", {"ip": STRING}, required=frozenset({"ip"}))
POD_IP = Obj("PodIP", {"ip": STRING}, required=frozenset({"ip"}))

CONTAINER_EXTENDED_RESOURCE_REQUEST = Obj(
    "ContainerExtendedResourceRequest",
    {"containerName": STRING, "requestName": STRING, "resourceName": STRING},
    required=frozenset({"containerName", "requestName", "resourceName"}),
)

POD_EXTENDED_RESOURCE_CLAIM_STATUS = Obj(
    "PodExtendedResourceClaimStatus",
    {
        "requestMappings": ListOf(CONTAINER_EXTENDED_RESOURCE_REQUEST),
        "resourceClaimName": STRING,
    },
    required=frozenset({"requestMappings", "resourceClaimName"}),
)

NODE_ALLOCATABLE_RESOURCE_CLAIM_STATUS = Obj(
    "NodeAllocatableResourceClaimStatus",
    {"containers": ListOf(STRING), "resourceClaimName": STRING, "resources": RESOURCE_LIST},
    required=frozenset({"resourceClaimName", "resources"}),
)

POD_RESOURCE_CLAIM_STATUS = Obj(
    "PodResourceClaimStatus",
    {"name": STRING, "resourceClaimName": STRING},
    required=frozenset({"name"}),
)

POD_STATUS = Obj(
    "PodStatus",
    {
        "phase": STRING,
        "conditions": ListOf(POD_CONDITION),
        "message": STRING,
        "reason": STRING,
        "nominatedNodeName": STRING,
        "hostIP": STRING,
        "hostIPs": ListOf(HOST_IP),
        "podIP": STRING,
        "podIPs": ListOf(POD_IP),
        "startTime": TIME,
        "qosClass": STRING,
        "observedGeneration": INT,
        "containerStatuses": ListOf(CONTAINER_STATUS),
        "initContainerStatuses": ListOf(CONTAINER_STATUS),
        "ephemeralContainerStatuses": ListOf(CONTAINER_STATUS),
        "resize": STRING,
        "resources": RESOURCE_REQUIREMENTS,
        "allocatedResources": RESOURCE_LIST,
        "resourceClaimStatuses": ListOf(POD_RESOURCE_CLAIM_STATUS),
        "extendedResourceClaimStatus": POD_EXTENDED_RESOURCE_CLAIM_STATUS,
        "nodeAllocatableResourceClaimStatuses": ListOf(NODE_ALLOCATABLE_RESOURCE_CLAIM_STATUS),
    },
)
