"""An in-memory stand-in for ``ClusterClient``: the same methods, kubectl's errors.

It keeps objects by ``(group/Kind, namespace, name)``, answers ``apply`` with
created/configured/unchanged as the API server would for the same input, and records
every call so a test can check what was (or was not) sent.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from meshlet.cluster.protocol import ApiError
from meshlet.errors import ExitCode
from meshlet.kubectl.messages import qualified_resource
from meshlet.kubectl.selectors import parse_selector
from meshlet.resources.kinds import KINDS, KindInfo, lookup


def _info(kind: str) -> KindInfo:
    for info in KINDS:
        if f"{info.group}/{info.kind}" == kind:
            return info
    raise ApiError("BadRequest", f'error: the server doesn\'t have a resource type "{kind}"')


def _not_found(info: KindInfo, name: str) -> ApiError:
    return ApiError(
        "NotFound", f'Error from server (NotFound): {qualified_resource(info)} "{name}" not found'
    )


class FakeCluster:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.pids: dict[tuple[str, str, str], int] = {}
        self.logs: dict[tuple[str, str, str], str] = {}
        self.admin_answers: dict[str, bytes] = {}
        self.syncz_answer = b""
        self.unavailable = False

    # -- helpers for tests ----------------------------------------------------------------

    def put(self, obj: Mapping[str, Any]) -> None:
        info = lookup(str(obj["apiVersion"]), str(obj["kind"]))
        assert info is not None
        meta = obj["metadata"]
        ns = str(meta.get("namespace") or "default") if info.namespaced else ""
        self.objects[(f"{info.group}/{info.kind}", ns, str(meta["name"]))] = copy.deepcopy(
            dict(obj)
        )

    def sent(self, op: str) -> list[dict[str, Any]]:
        return [args for name, args in self.calls if name == op]

    def _record(self, op: str, **args: Any) -> None:
        if self.unavailable:
            raise ApiError(
                "Unavailable",
                'meshlet is not running: run "meshlet install" first',
                exit_code=ExitCode.UNAVAILABLE,
            )
        self.calls.append((op, copy.deepcopy(args)))

    def _place(self, obj: Mapping[str, Any], namespace: str) -> tuple[tuple[str, str, str], Any]:
        info = lookup(str(obj["apiVersion"]), str(obj["kind"]))
        assert info is not None
        body = copy.deepcopy(dict(obj))
        meta = body.setdefault("metadata", {})
        ns = ""
        if info.namespaced:
            ns = str(meta.get("namespace") or namespace)
            meta["namespace"] = ns
        return (f"{info.group}/{info.kind}", ns, str(meta["name"])), (info, body)

    @staticmethod
    def _result(info: KindInfo, key: tuple[str, str, str], action: str) -> dict[str, Any]:
        return {
            "kind": info.kind,
            "group": info.group,
            "name": key[2],
            "namespace": key[1] or None,
            "action": action,
            "warnings": [],
        }

    # -- the API --------------------------------------------------------------------------

    def apply(
        self,
        objects: Sequence[Mapping[str, Any]],
        *,
        namespace: str,
        dry_run: bool = False,
        sources: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[dict[str, Any]]:
        self._record(
            "apply", objects=list(objects), namespace=namespace, dry_run=dry_run, sources=sources
        )
        results = []
        for obj in objects:
            key, (info, body) = self._place(obj, namespace)
            current = self.objects.get(key)
            if current is None:
                action = "created"
            else:
                mine = {k: v for k, v in body.items() if k != "status"}
                theirs = {k: v for k, v in current.items() if k != "status"}
                action = "unchanged" if mine == theirs else "configured"
            if not dry_run:
                self.objects[key] = body
            results.append(self._result(info, key, action))
        return results

    def create(
        self,
        objects: Sequence[Mapping[str, Any]],
        *,
        namespace: str,
        dry_run: bool = False,
        sources: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[dict[str, Any]]:
        self._record("create", objects=list(objects), namespace=namespace, dry_run=dry_run)
        results = []
        for obj in objects:
            key, (info, body) = self._place(obj, namespace)
            if key in self.objects:
                raise ApiError(
                    "AlreadyExists",
                    f'Error from server (AlreadyExists): {info.plural} "{key[2]}" already exists',
                )
            if not dry_run:
                self.objects[key] = body
            results.append(self._result(info, key, "created"))
        return results

    def get(
        self,
        kind: str,
        *,
        namespace: str | None,
        names: Sequence[str] = (),
        selector: str | None = None,
    ) -> list[dict[str, Any]]:
        self._record("get", kind=kind, namespace=namespace, names=list(names), selector=selector)
        info = _info(kind)
        items = [
            (key, obj)
            for key, obj in sorted(self.objects.items())
            if key[0] == kind and (namespace is None or not info.namespaced or key[1] == namespace)
        ]
        if names:
            found = []
            for name in names:
                match = [obj for key, obj in items if key[2] == name]
                if not match:
                    raise _not_found(info, name)
                found.append(copy.deepcopy(match[0]))
            return found
        parsed = parse_selector(selector or "")
        return [
            copy.deepcopy(obj)
            for _, obj in items
            if parsed.matches((obj.get("metadata") or {}).get("labels") or {})
        ]

    def delete(
        self, kind: str, *, namespace: str | None, names: Sequence[str]
    ) -> list[dict[str, Any]]:
        self._record("delete", kind=kind, namespace=namespace, names=list(names))
        info = _info(kind)
        ns = (namespace or "default") if info.namespaced else ""
        results = []
        for name in names:
            key = (kind, ns, name)
            if key not in self.objects:
                results.append(
                    {
                        "kind": info.kind,
                        "group": info.group,
                        "name": name,
                        "namespace": ns or None,
                        "status": "NotFound",
                        "message": _not_found(info, name).message,
                    }
                )
                continue
            del self.objects[key]
            if kind == "/Namespace":
                for other in [k for k in self.objects if k[1] == name]:
                    del self.objects[other]
            results.append(
                {
                    "kind": info.kind,
                    "group": info.group,
                    "name": name,
                    "namespace": ns or None,
                    "status": "Deleted",
                }
            )
        if all(r["status"] == "NotFound" for r in results):
            raise ApiError("NotFound", str(results[0]["message"]))
        return results

    def label(
        self,
        kind: str,
        *,
        namespace: str | None,
        name: str,
        labels: Mapping[str, str | None],
        overwrite: bool,
    ) -> dict[str, Any]:
        self._record(
            "label",
            kind=kind,
            namespace=namespace,
            name=name,
            labels=dict(labels),
            overwrite=overwrite,
        )
        info = _info(kind)
        key = (kind, (namespace or "default") if info.namespaced else "", name)
        if key not in self.objects:
            raise _not_found(info, name)
        meta = self.objects[key].setdefault("metadata", {})
        current = dict(meta.get("labels") or {})
        updated = dict(current)
        for label, value in labels.items():
            if value is None:
                updated.pop(label, None)
            elif label in current and current[label] != value and not overwrite:
                raise ApiError(
                    "BadRequest",
                    f"error: '{label}' already has a value ({current[label]}), and --overwrite is false",
                )
            else:
                updated[label] = value
        meta["labels"] = updated
        action = "not labeled" if updated == current else "labeled"
        return {"kind": info.kind, "group": info.group, "name": name, "action": action}

    def locate(self, namespace: str, pod: str, container: str | None = None) -> dict[str, Any]:
        self._record("locate", namespace=namespace, pod=pod, container=container)
        pid = self.pids[(namespace, pod, container or "")]
        return {"pid": pid, "container": container, "root": f"/proc/{pid}/root"}

    def logs_path(self, namespace: str, pod: str, container: str | None = None) -> str:
        self._record("logs_path", namespace=namespace, pod=pod, container=container)
        return self.logs[(namespace, pod, container or "")]

    def admin(self, namespace: str, pod: str, path: str) -> bytes:
        self._record("admin", namespace=namespace, pod=pod, path=path)
        return self.admin_answers[path]

    def proxy_status(self) -> bytes:
        self._record("proxy_status")
        return self.syncz_answer
