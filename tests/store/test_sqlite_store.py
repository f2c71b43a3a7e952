from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from meshlet.store import AlreadyExists, ApplyAction, NotFound, ObjectKey, Store
from meshlet.store.sqlite import Expired

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
SVC = ObjectKey("/Service", "test", "httpbin")
SA = ObjectKey("/ServiceAccount", "test", "httpbin")


def service(port: int = 8080) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "httpbin"},
        "spec": {"ports": [{"port": port}]},
    }


@pytest.fixture
def store() -> Store:
    return Store(":memory:", now=lambda: NOW)


def test_apply_creates_then_configures_then_is_unchanged(store: Store) -> None:
    (created,) = store.apply([(SVC, service())])
    assert created.action is ApplyAction.CREATED
    stored = store.get(SVC)
    assert stored is not None
    meta = stored.body["metadata"]
    assert meta["namespace"] == "test"
    assert meta["creationTimestamp"] == "2026-01-02T03:04:05Z"
    assert meta["resourceVersion"] == str(created.resource_version)
    uid = meta["uid"]

    (same,) = store.apply([(SVC, service())])
    assert same.action is ApplyAction.UNCHANGED
    (changed,) = store.apply([(SVC, service(9090))])
    assert changed.action is ApplyAction.CONFIGURED
    assert changed.resource_version > created.resource_version
    updated = store.get(SVC)
    assert updated is not None
    assert updated.body["metadata"]["uid"] == uid


def test_apply_is_all_or_nothing(store: Store) -> None:
    store.create([(SA, {"metadata": {"name": "httpbin"}})])
    with pytest.raises(AlreadyExists):
        store.create([(SVC, service()), (SA, {"metadata": {"name": "httpbin"}})])
    assert store.get(SVC) is None


def test_dry_run_changes_nothing(store: Store) -> None:
    (result,) = store.apply([(SVC, service())], dry_run=True)
    assert result.action is ApplyAction.CREATED
    assert store.get(SVC) is None
    assert store.revision == 0


def test_watch_events_follow_changes(store: Store) -> None:
    store.apply([(SVC, service())])
    start = store.revision
    store.apply([(SVC, service(1))])
    store.delete([SVC])
    events = store.events_since(start)
    assert [e.type for e in events] == ["MODIFIED", "DELETED"]
    assert [e.resource_version for e in events] == [start + 1, start + 2]
    with pytest.raises(NotFound):
        store.delete([SVC])


def test_compacted_log_asks_for_a_relist(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("meshlet.store.sqlite._EVENT_LOG_LENGTH", 2)
    for port in range(1, 6):
        store.apply([(SVC, service(port))])
    with pytest.raises(Expired):
        store.events_since(0)
    assert len(store.events_since(store.revision - 1)) == 1


def test_objects_survive_reopening(tmp_path: Path) -> None:
    path = str(tmp_path / "cluster.db")
    first = Store(path, now=lambda: NOW)
    first.apply([(SVC, service())])
    first.close()
    again = Store(path)
    stored = again.get(SVC)
    assert stored is not None
    assert stored.body["spec"] == {"ports": [{"port": 8080}]}
    assert [o.key for o in again.list_kind("/Service")] == [SVC]
    assert again.list_kind("/Service", "other") == []


def test_status_updates_keep_the_spec(store: Store) -> None:
    store.apply([(SVC, service())])
    store.update_status(SVC, {"loadBalancer": {}})
    (result,) = store.apply([(SVC, service())])
    assert result.action is ApplyAction.UNCHANGED
    stored = store.get(SVC)
    assert stored is not None
    assert stored.body["status"] == {"loadBalancer": {}}
