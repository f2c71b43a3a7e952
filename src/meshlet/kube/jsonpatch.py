"""RFC 6902 JSON patches from two JSON values (what a mutating webhook answers).

Theory of operation: ``make_patch(old, new)`` walks both values together and emits
the operations that turn ``old`` into ``new``:

- objects: a ``remove`` for each key only ``old`` has, the differences below each key
  both have, an ``add`` for each key only ``new`` has (keys in sorted order);
- arrays: the differences item by item over the common length, then an ``add`` for
  each extra item of ``new`` (at its index, in order) or a ``remove`` for each extra
  item of ``old`` (from the end, so the indexes stay right);
- anything else that differs, or a change of type, is one ``replace``.

Keys are escaped as RFC 6901 says (``~`` is ``~0``, ``/`` is ``~1``), so annotation
keys such as ``sidecar.istio.io/status`` are safe. The same inputs give the same
operations in the same order. Pure.
"""

from __future__ import annotations

from typing import Any

__all__ = ["escape_pointer", "make_patch"]


def escape_pointer(key: str) -> str:
    """One reference token of a JSON pointer (RFC 6901)."""
    return key.replace("~", "~0").replace("/", "~1")


def _same(a: Any, b: Any) -> bool:
    # JSON has one number type, but true is not 1: compare types as JSON does.
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and bool(a == b)


def make_patch(old: Any, new: Any) -> list[dict[str, Any]]:
    """The operations that turn ``old`` into ``new``, in the order they apply."""
    operations: list[dict[str, Any]] = []
    _diff(old, new, "", operations)
    return operations


def _diff(old: Any, new: Any, path: str, out: list[dict[str, Any]]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) - set(new)):
            out.append({"op": "remove", "path": f"{path}/{escape_pointer(key)}"})
        for key in sorted(set(old) & set(new)):
            _diff(old[key], new[key], f"{path}/{escape_pointer(key)}", out)
        for key in sorted(set(new) - set(old)):
            out.append({"op": "add", "path": f"{path}/{escape_pointer(key)}", "value": new[key]})
        return
    if isinstance(old, list) and isinstance(new, list):
        common = min(len(old), len(new))
        for index in range(common):
            _diff(old[index], new[index], f"{path}/{index}", out)
        for index in range(common, len(new)):
            out.append({"op": "add", "path": f"{path}/{index}", "value": new[index]})
        for index in range(len(old) - 1, common - 1, -1):
            out.append({"op": "remove", "path": f"{path}/{index}"})
        return
    if not _same(old, new):
        out.append({"op": "replace", "path": path, "value": new})
