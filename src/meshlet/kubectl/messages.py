"""kubectl's messages, word for word, as functions.

Two kinds of failure: kubectl's own (``error: …``) and the API server's
(``Error from server (Reason): …``); ``KubectlError.line`` is the whole line as
kubectl writes it to stderr. Success lines are plain strings for stdout (stderr
for ``No resources found``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from meshlet.errors import ExitCode, MeshletError

if TYPE_CHECKING:
    from meshlet.resources.kinds import KindInfo

__all__ = [
    "KubectlError",
    "already_exists",
    "applied",
    "bad_label_selector",
    "condition_met",
    "configured",
    "created",
    "deleted",
    "exec_exit_code",
    "labeled",
    "name_prefix",
    "name_with_selector",
    "no_name_specified",
    "no_resources_found",
    "not_found",
    "qualified_resource",
    "restarted",
    "unchanged",
    "unknown_resource_type",
]


class KubectlError(MeshletError):
    """A failure as kubectl reports it.

    ``reason`` is set for the API server's errors (``NotFound``, ``AlreadyExists``,
    ``BadRequest``); ``line`` is what kubectl prints: ``error: <message>`` for its
    own errors and ``Error from server (<reason>): <message>`` for the server's.
    """

    def __init__(
        self, message: str, *, reason: str | None = None, exit_code: ExitCode = ExitCode.ERROR
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.exit_code = exit_code

    @property
    def line(self) -> str:
        if self.reason is not None:
            return f"Error from server ({self.reason}): {self.message}"
        return f"error: {self.message}"


def qualified_resource(info: KindInfo) -> str:
    """The resource as the API server names it in messages: ``pods``, ``deployments.apps``."""
    return f"{info.plural}.{info.group}" if info.group else info.plural


def name_prefix(info: KindInfo) -> str:
    """The prefix of ``-o name`` and of success lines: ``pod``, ``deployment.apps``."""
    kind = info.kind.lower()
    return f"{kind}.{info.group}" if info.group else kind


# --- failures ------------------------------------------------------------------------


def not_found(info: KindInfo, name: str) -> KubectlError:
    """``Error from server (NotFound): pods "x" not found`` (``deployments.apps "x" …``)."""
    return KubectlError(
        f'{qualified_resource(info)} "{name}" not found',
        reason="NotFound",
        exit_code=ExitCode.NOT_FOUND,
    )


def already_exists(info: KindInfo, name: str) -> KubectlError:
    """``Error from server (AlreadyExists): secrets "x" already exists``."""
    return KubectlError(
        f'{qualified_resource(info)} "{name}" already exists', reason="AlreadyExists"
    )


def unknown_resource_type(text: str) -> KubectlError:
    """``error: the server doesn't have a resource type "x"``."""
    return KubectlError(f'the server doesn\'t have a resource type "{text}"')


def no_name_specified() -> KubectlError:
    """``error: resource(s) were provided, but no name was specified`` (delete, describe…)."""
    return KubectlError("resource(s) were provided, but no name was specified")


def name_with_selector() -> KubectlError:
    """``error: name cannot be provided when a selector is specified``."""
    return KubectlError("name cannot be provided when a selector is specified")


def bad_label_selector(info: KindInfo, version: str, selector: str, detail: str) -> KubectlError:
    """The API server's answer to a ``-l`` it cannot parse (``detail`` from ``selectors``)."""
    group_version = f"{info.group}/{version}" if info.group else f"/{version}"
    return KubectlError(
        f'Unable to find "{group_version}, Resource={info.plural}" that match label selector '
        f'"{selector}", field selector "": {detail}',
        reason="BadRequest",
    )


# --- successes -----------------------------------------------------------------------


def _action(info: KindInfo, name: str, action: str, dry_run: bool) -> str:
    suffix = " (dry run)" if dry_run else ""
    return f"{name_prefix(info)}/{name} {action}{suffix}"


def created(info: KindInfo, name: str, *, dry_run: bool = False) -> str:
    """``namespace/test created``, ``secret/x created (dry run)``."""
    return _action(info, name, "created", dry_run)


def configured(info: KindInfo, name: str, *, dry_run: bool = False) -> str:
    return _action(info, name, "configured", dry_run)


def unchanged(info: KindInfo, name: str, *, dry_run: bool = False) -> str:
    return _action(info, name, "unchanged", dry_run)


def applied(info: KindInfo, name: str, action: str, *, dry_run: bool = False) -> str:
    """apply's line: ``service/httpbin created|configured|unchanged``."""
    if action not in ("created", "configured", "unchanged"):
        raise ValueError(f"not an apply action: {action}")
    return _action(info, name, action, dry_run)


def labeled(info: KindInfo, name: str, *, changed: bool = True) -> str:
    """``namespace/test labeled`` (``not labeled`` when nothing changed)."""
    return _action(info, name, "labeled" if changed else "not labeled", False)


def restarted(info: KindInfo, name: str) -> str:
    """``deployment.apps/httpbin restarted`` (``rollout restart``)."""
    return _action(info, name, "restarted", False)


def deleted(info: KindInfo, name: str, namespace: str | None = None) -> str:
    """``secret "x" deleted from test namespace``; ``namespace "test" deleted``.

    Current kubectl names the namespace of a namespaced object it deleted.
    """
    line = f'{name_prefix(info)} "{name}" deleted'
    if info.namespaced and namespace:
        line += f" from {namespace} namespace"
    return line


def condition_met(info: KindInfo, name: str) -> str:
    """wait's line: ``pod/sleep-557747455f-brzf6 condition met``."""
    return _action(info, name, "condition met", False)


def exec_exit_code(code: int) -> str:
    """exec's stderr line when the command fails: ``command terminated with exit code 56``."""
    return f"command terminated with exit code {code}"


def no_resources_found(namespace: str | None) -> str:
    """``get``'s stderr line for an empty list (``None``: all namespaces, or cluster-scoped)."""
    if namespace:
        return f"No resources found in {namespace} namespace."
    return "No resources found"
