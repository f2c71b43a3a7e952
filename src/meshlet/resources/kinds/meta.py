"""``meta/v1`` types shared by every kind (``ObjectMeta`` and friends)."""

from __future__ import annotations

from meshlet.resources.schema import BOOL, FREE, INT, STRING, ListOf, MapOf, Obj

__all__ = ["OBJECT_META", "TIME", "top_level"]

TIME = STRING  # RFC 3339, e.g. "2022-02-14T09:51:56Z"

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
        "fieldsV1": FREE,
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


def top_level(kind: str, **fields: Obj | MapOf | ListOf) -> Obj:
    """The object of a kind: ``apiVersion``, ``kind``, ``metadata`` and its own fields."""
    return Obj(kind, {"apiVersion": STRING, "kind": STRING, "metadata": OBJECT_META, **fields})
