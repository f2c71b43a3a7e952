"""``apps/v1`` kinds: Deployment (its pod template is ``kinds.pod.POD_TEMPLATE_SPEC``)."""

from __future__ import annotations

from meshlet.resources.kinds._registry import KindInfo
from meshlet.resources.kinds.meta import LABEL_SELECTOR, TIME, top_level
from meshlet.resources.kinds.pod import POD_TEMPLATE_SPEC
from meshlet.resources.schema import BOOL, INT, INT_OR_STRING, STRING, ListOf, Obj

__all__ = ["DEPLOYMENT", "KINDS"]

ROLLING_UPDATE_DEPLOYMENT = Obj(
    "RollingUpdateDeployment",
    {"maxSurge": INT_OR_STRING, "maxUnavailable": INT_OR_STRING},  # 1 or "25%"
)

DEPLOYMENT_STRATEGY = Obj(
    "DeploymentStrategy",
    {"rollingUpdate": ROLLING_UPDATE_DEPLOYMENT, "type": STRING},  # RollingUpdate, Recreate
)

DEPLOYMENT_SPEC = Obj(
    "DeploymentSpec",
    {
        "replicas": INT,  # 1 when unset
        "selector": LABEL_SELECTOR,  # must match the template's labels
        "template": POD_TEMPLATE_SPEC,
        "strategy": DEPLOYMENT_STRATEGY,
        "minReadySeconds": INT,
        "revisionHistoryLimit": INT,
        "progressDeadlineSeconds": INT,
        "paused": BOOL,
    },
    required=frozenset({"selector", "template"}),
)

DEPLOYMENT_CONDITION = Obj(
    "DeploymentCondition",
    {
        "lastTransitionTime": TIME,
        "lastUpdateTime": TIME,
        "message": STRING,
        "reason": STRING,
        "status": STRING,
        "type": STRING,
    },
    required=frozenset({"status", "type"}),
)

DEPLOYMENT_STATUS = Obj(
    "DeploymentStatus",
    {
        "observedGeneration": INT,
        "replicas": INT,
        "updatedReplicas": INT,
        "readyReplicas": INT,
        "availableReplicas": INT,
        "unavailableReplicas": INT,
        "terminatingReplicas": INT,
        "collisionCount": INT,
        "conditions": ListOf(DEPLOYMENT_CONDITION),
    },
)

DEPLOYMENT = KindInfo(
    group="apps",
    versions=("v1",),
    kind="Deployment",
    plural="deployments",
    namespaced=True,
    short_names=("deploy",),
    schema=top_level("Deployment", spec=DEPLOYMENT_SPEC, status=DEPLOYMENT_STATUS),
)

KINDS: tuple[KindInfo, ...] = (DEPLOYMENT,)
