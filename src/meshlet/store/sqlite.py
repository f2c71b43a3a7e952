"""The cluster's objects in SQLite, as the API server keeps them in etcd.

Theory of operation: one table holds the current objects, keyed by
``(api group/kind, namespace, name)``; another is the change log that watches read.
Every write takes the next value of one global counter as its ``resourceVersion``
(like etcd's revision), sets ``metadata.resourceVersion``, ``uid`` and
``creationTimestamp`` as the API server does, and appends ``ADDED``, ``MODIFIED`` or
``DELETED`` to the log. ``apply`` of several objects is one transaction: all of them
or none. A watcher asks for the events after the version it has seen
(``events_since``); the log is compacted to a bounded length, and a watcher that
fell behind the compaction is told to list again (``Expired``), as a ``410 Gone``
tells a Kubernetes client.

WAL mode lets readers (the CLI, the control plane) read while the daemon writes.
The clock is passed in (``now``), so the store's behaviour is testable.
"""

from __future__ import annotations

import enum
import json
import sqlite3
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from meshlet.errors import ExitCode, MeshletError

__all__ = [
    "AlreadyExists",
    "ApplyAction",
    "ApplyResult",
    "Expired",
    "NotFound",
    "ObjectKey",
    "Store",
    "StoredObject",
    "WatchEvent",
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    kind TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    resource_version INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (kind, namespace, name)
);
CREATE TABLE IF NOT EXISTS events (
    resource_version INTEGER PRIMARY KEY,
    type TEXT NOT NULL,
    kind TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

_EVENT_LOG_LENGTH = 10_000


class NotFound(MeshletError):
    exit_code = ExitCode.NOT_FOUND


class AlreadyExists(MeshletError):
    pass


class Expired(MeshletError):
    """The change log no longer reaches back to the version asked for: list again."""


@dataclass(frozen=True, slots=True, order=True)
class ObjectKey:
    """``kind`` is ``group/Kind`` (``/Service`` for the core group); namespace "" if cluster-scoped."""

    kind: str
    namespace: str
    name: str


@dataclass(frozen=True, slots=True)
class StoredObject:
    key: ObjectKey
    resource_version: int
    body: Mapping[str, Any]


class ApplyAction(enum.Enum):
    CREATED = "created"
    CONFIGURED = "configured"
    UNCHANGED = "unchanged"


@dataclass(frozen=True, slots=True)
class ApplyResult:
    key: ObjectKey
    action: ApplyAction
    resource_version: int


@dataclass(frozen=True, slots=True)
class WatchEvent:
    type: str  # ADDED, MODIFIED, DELETED
    resource_version: int
    key: ObjectKey
    body: Mapping[str, Any]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _stamp(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _dump(body: Mapping[str, Any]) -> str:
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


def _user_fields(body: Mapping[str, Any]) -> dict[str, Any]:
    """The object without what the server sets, to tell ``configured`` from ``unchanged``."""
    copy = json.loads(_dump(body))
    meta = copy.get("metadata") or {}
    for field in ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields"):
        meta.pop(field, None)
    copy.pop("status", None)
    return dict(copy)


class Store:
    """The cluster's objects in one SQLite file (``:memory:`` for tests)."""

    def __init__(self, path: str, *, now: Callable[[], datetime] = _utc_now) -> None:
        self._path = path
        self._now = now
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # Reading

    @property
    def revision(self) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'revision'").fetchone()
        return int(row[0]) if row else 0

    def get(self, key: ObjectKey) -> StoredObject | None:
        row = self._db.execute(
            "SELECT resource_version, body FROM objects WHERE kind=? AND namespace=? AND name=?",
            (key.kind, key.namespace, key.name),
        ).fetchone()
        if row is None:
            return None
        return StoredObject(key, int(row[0]), json.loads(row[1]))

    def list_kind(self, kind: str, namespace: str | None = None) -> list[StoredObject]:
        """Objects of ``kind`` (in ``namespace``, or in all when None), sorted by namespace/name."""
        if namespace is None:
            rows = self._db.execute(
                "SELECT namespace, name, resource_version, body FROM objects WHERE kind=? "
                "ORDER BY namespace, name",
                (kind,),
            )
        else:
            rows = self._db.execute(
                "SELECT namespace, name, resource_version, body FROM objects "
                "WHERE kind=? AND namespace=? ORDER BY name",
                (kind, namespace),
            )
        return [
            StoredObject(ObjectKey(kind, ns, name), int(rv), json.loads(body))
            for ns, name, rv, body in rows
        ]

    def events_since(self, resource_version: int) -> list[WatchEvent]:
        """The changes after ``resource_version``; ``Expired`` if the log was compacted past it."""
        oldest = self._db.execute("SELECT MIN(resource_version) FROM events").fetchone()[0]
        if oldest is not None and resource_version < oldest - 1:
            raise Expired(
                f"too old resource version: {resource_version} ({oldest - 1})",
            )
        rows = self._db.execute(
            "SELECT resource_version, type, kind, namespace, name, body FROM events "
            "WHERE resource_version > ? ORDER BY resource_version",
            (resource_version,),
        )
        return [
            WatchEvent(type_, int(rv), ObjectKey(kind, ns, name), json.loads(body))
            for rv, type_, kind, ns, name, body in rows
        ]

    # Writing

    def apply(
        self, objects: Iterable[tuple[ObjectKey, Mapping[str, Any]]], *, dry_run: bool = False
    ) -> list[ApplyResult]:
        """Create or update every object in one transaction, as ``kubectl apply`` does.

        With ``dry_run`` the transaction is rolled back: the results say what would happen.
        """
        try:
            with self._transaction() as db:
                results = [self._put(db, key, body, create_only=False) for key, body in objects]
                if dry_run:
                    raise _DryRun(results)
        except _DryRun as dry:
            return dry.results
        return results

    def create(self, objects: Iterable[tuple[ObjectKey, Mapping[str, Any]]]) -> list[ApplyResult]:
        """Create every object, failing (and creating none) if one exists already."""
        with self._transaction() as db:
            return [self._put(db, key, body, create_only=True) for key, body in objects]

    def update_status(self, key: ObjectKey, status: Mapping[str, Any]) -> StoredObject:
        """Replace ``status`` of an object (the runtime's reports), keeping its spec."""
        with self._transaction() as db:
            current = self.get(key)
            if current is None:
                raise NotFound(f'{key.kind.split("/")[-1].lower()} "{key.name}" not found')
            body = dict(current.body)
            body["status"] = dict(status)
            if body == current.body:
                return current
            version = self._next_version(db)
            body["metadata"] = {**body.get("metadata", {}), "resourceVersion": str(version)}
            self._write(db, key, body, version, "MODIFIED")
            return StoredObject(key, version, body)

    def delete(self, keys: Iterable[ObjectKey]) -> list[ObjectKey]:
        """Delete every object in one transaction; ``NotFound`` (and nothing deleted) if one is missing."""
        deleted: list[ObjectKey] = []
        with self._transaction() as db:
            for key in keys:
                current = self.get(key)
                if current is None:
                    raise NotFound(f'{key.kind.split("/")[-1].lower()} "{key.name}" not found')
                version = self._next_version(db)
                db.execute(
                    "DELETE FROM objects WHERE kind=? AND namespace=? AND name=?",
                    (key.kind, key.namespace, key.name),
                )
                self._log(db, "DELETED", key, current.body, version)
                deleted.append(key)
        return deleted

    def _put(
        self, db: sqlite3.Connection, key: ObjectKey, body: Mapping[str, Any], *, create_only: bool
    ) -> ApplyResult:
        current = self.get(key)
        if current is not None and create_only:
            kind = key.kind.split("/")[-1].lower()
            raise AlreadyExists(f'{kind}s "{key.name}" already exists')
        new = json.loads(_dump(body))
        meta = new.setdefault("metadata", {})
        if key.namespace:
            meta["namespace"] = key.namespace
        if current is not None and _user_fields(current.body) == _user_fields(new):
            return ApplyResult(key, ApplyAction.UNCHANGED, current.resource_version)
        version = self._next_version(db)
        if current is None:
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = _stamp(self._now())
        else:
            old_meta = current.body.get("metadata", {})
            meta["uid"] = old_meta.get("uid")
            meta["creationTimestamp"] = old_meta.get("creationTimestamp")
            if "status" in current.body and "status" not in new:
                new["status"] = current.body["status"]
        meta["resourceVersion"] = str(version)
        self._write(db, key, new, version, "ADDED" if current is None else "MODIFIED")
        action = ApplyAction.CREATED if current is None else ApplyAction.CONFIGURED
        return ApplyResult(key, action, version)

    def _write(
        self,
        db: sqlite3.Connection,
        key: ObjectKey,
        body: Mapping[str, Any],
        version: int,
        event: str,
    ) -> None:
        db.execute(
            "INSERT OR REPLACE INTO objects (kind, namespace, name, resource_version, body) "
            "VALUES (?, ?, ?, ?, ?)",
            (key.kind, key.namespace, key.name, version, _dump(body)),
        )
        self._log(db, event, key, body, version)

    def _log(
        self,
        db: sqlite3.Connection,
        event: str,
        key: ObjectKey,
        body: Mapping[str, Any],
        version: int,
    ) -> None:
        db.execute(
            "INSERT INTO events (resource_version, type, kind, namespace, name, body) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (version, event, key.kind, key.namespace, key.name, _dump(body)),
        )
        db.execute("DELETE FROM events WHERE resource_version <= ?", (version - _EVENT_LOG_LENGTH,))

    def _next_version(self, db: sqlite3.Connection) -> int:
        version = self.revision + 1
        db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('revision', ?)", (str(version),)
        )
        return version


class _DryRun(Exception):
    """Raised inside the transaction so that it rolls back, carrying what would have happened."""

    def __init__(self, results: list[ApplyResult]) -> None:
        super().__init__("dry run")
        self.results = results
