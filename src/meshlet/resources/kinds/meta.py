"""``meta/v1`` types shared by every kind (``ObjectMeta`` and friends).

Also the two scalar conventions of the Kubernetes API that appear everywhere:
timestamps (RFC 3339 strings) and ``resource.Quantity`` (``"500m"``, ``"1Gi"`` or a
plain number), which the schema language reads as int-or-string.
"""

from __future__ import annotations

from meshlet.resources.schema import (
    BOOL,
    FREE,
    INT,
    STRING,
    IntOrString,
    ListOf,
    MapOf,
    Obj,
    SchemaType,
)

__all__ = [
    "CONDITION",
    "LABEL_SELECTOR",
    "OBJECT_META",
    "QUANTITY",
    "RESOURCE_LIST",
    "TIME",
    "top_level",
]

TIME = STRING  # RFC 3339, e.g. "2022-02-14T09:51:56Z"
QUANTITY = IntOrString(decimals=True)  # resource.Quantity: "250m", "64Mi", 2, 0.5
RESOURCE_LIST = MapOf(QUANTITY)  # {"cpu": "250m", "memory": "64Mi"}

OWNER_REFERENCE = Obj(
    "OwnerReference",
    {
        "apiVersion": STRING,
        "blockOwnerDeletion": BOOL,
        "controller": BOOL,
        "kind": STRING,
        "name": STRING,
        "uid": STRING,
    },
    required=frozenset({"apiVersion", "kind", "name", "uid"}),
)

MANAGED_FIELDS_ENTRY = Obj(
    "ManagedFieldsEntry",
    {
        "apiVersion": STRING,
        "fieldsType": STRING,
        "fieldsV1": FREE,  # a trie of field names, kept as written
        "manager": STRING,
        "operation": STRING,
        "subresource": STRING,
        "time": TIME,
    },
)

OBJECT_META = Obj(
    "ObjectMeta",
    {
        "annotations": MapOf(STRING),
        "creationTimestamp": TIME,
        "deletionGracePeriodSeconds": INT,
        "deletionTimestamp": TIME,
        "finalizers": ListOf(STRING),
        "generateName": STRING,
        "generation": INT,
        "labels": MapOf(STRING),
        "managedFields": ListOf(MANAGED_FIELDS_ENTRY),
        "name": STRING,
        "namespace": STRING,
        "ownerReferences": ListOf(OWNER_REFERENCE),
        "resourceVersion": STRING,
        "selfLink": STRING,
        "uid": STRING,
    },
)

LABEL_SELECTOR_REQUIREMENT = Obj(
    "LabelSelectorRequirement",
    {
        "key": STRING,
        "operator": STRING,  # In, NotIn, Exists, DoesNotExist
        "values": ListOf(STRING),
    },
    required=frozenset({"key", "operator"}),
)

LABEL_SELECTOR = Obj(
    "LabelSelector",
    {
        "matchExpressions": ListOf(LABEL_SELECTOR_REQUIREMENT),
        "matchLabels": MapOf(STRING),
    },
)

CONDITION = Obj(
    "Condition",
    {
        "lastTransitionTime": TIME,
        "message": STRING,
        "observedGeneration": INT,
        "reason": STRING,
        "status": STRING,
        "type": STRING,
    },
    required=frozenset({"lastTransitionTime", "message", "reason", "status", "type"}),
)


def top_level(kind: str, **fields: SchemaType) -> Obj:
    """The object of a kind: ``apiVersion``, ``kind``, ``metadata`` and its own fields."""
    return Obj(kind, {"apiVersion": STRING, "kind": STRING, "metadata": OBJECT_META, **fields})
