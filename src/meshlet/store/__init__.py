"""The local cluster's object store: durable, versioned, watchable (SQLite in WAL mode)."""

from meshlet.store.sqlite import (
    AlreadyExists,
    ApplyAction,
    ApplyResult,
    NotFound,
    ObjectKey,
    Store,
    StoredObject,
    WatchEvent,
)

__all__ = [
    "AlreadyExists",
    "ApplyAction",
    "ApplyResult",
    "NotFound",
    "ObjectKey",
    "Store",
    "StoredObject",
    "WatchEvent",
]
