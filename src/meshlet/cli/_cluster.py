"""What the verbs of the local cluster share: the API client, kubectl's error lines,
the clock, kinds by name, and the samples that ship with meshlet.

``open_client()`` is the one place a verb gets its ``ClusterClient`` (tests replace it
with a fake that has the same methods). ``server_errors`` turns the API's
``ApiError`` (whose message is already the whole line kubectl prints, such as
``Error from server (NotFound): pods "x" not found``, or
``meshlet is not running: run "meshlet install" first``) into a ``KubectlError``
printed as it is, with the API's exit code.
"""

from __future__ import annotations

import argparse
import functools
import os
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ParamSpec, Protocol

from meshlet.cluster.client import ClusterClient
from meshlet.cluster.home import ClusterHome
from meshlet.cluster.protocol import ApiError
from meshlet.errors import ExitCode
from meshlet.kubectl.messages import KubectlError
from meshlet.resources.kinds import KINDS, KindInfo

__all__ = [
    "ClusterApi",
    "ServerError",
    "add_dry_run_flag",
    "explicit_namespace",
    "info_for",
    "kind_key",
    "now",
    "open_client",
    "resolve_sample",
    "server_errors",
]


class ClusterApi(Protocol):
    """The methods of ``ClusterClient`` the verbs call."""

    def apply(
        self,
        objects: Sequence[Mapping[str, Any]],
        *,
        namespace: str,
        dry_run: bool = False,
        sources: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[dict[str, Any]]: ...

    def create(
        self,
        objects: Sequence[Mapping[str, Any]],
        *,
        namespace: str,
        dry_run: bool = False,
        sources: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[dict[str, Any]]: ...

    def get(
        self,
        kind: str,
        *,
        namespace: str | None,
        names: Sequence[str] = (),
        selector: str | None = None,
    ) -> list[dict[str, Any]]: ...

    def delete(
        self, kind: str, *, namespace: str | None, names: Sequence[str]
    ) -> list[dict[str, Any]]: ...

    def label(
        self,
        kind: str,
        *,
        namespace: str | None,
        name: str,
        labels: Mapping[str, str | None],
        overwrite: bool,
    ) -> dict[str, Any]: ...

    def locate(self, namespace: str, pod: str, container: str | None = None) -> dict[str, Any]: ...

    def logs_path(self, namespace: str, pod: str, container: str | None = None) -> str: ...

    def admin(self, namespace: str, pod: str, path: str) -> bytes: ...

    def proxy_status(self) -> bytes: ...


def open_client() -> ClusterApi:
    """The API client of the cluster under ``MESHLET_HOME``."""
    return ClusterClient(ClusterHome.from_environment(os.environ))


class ServerError(KubectlError):
    """A line the API answered with, printed as it is."""

    def __init__(self, line: str, *, reason: str, exit_code: ExitCode) -> None:
        super().__init__(line, reason=reason, exit_code=exit_code)
        self._line = line

    @property
    def line(self) -> str:
        return self._line


def from_api(error: ApiError) -> ServerError:
    return ServerError(error.message, reason=error.reason, exit_code=error.exit_code)


_P = ParamSpec("_P")


def server_errors(run: Callable[_P, int]) -> Callable[_P, int]:
    """Wrap a verb's ``run`` so the API's errors print as kubectl prints them."""

    @functools.wraps(run)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> int:
        try:
            return run(*args, **kwargs)
        except ApiError as error:
            raise from_api(error) from None

    return wrapper


def now() -> datetime:
    return datetime.now(UTC)


def explicit_namespace(args: argparse.Namespace) -> str | None:
    """The namespace given with ``-n`` (before or after the verb), or None."""
    value = getattr(args, "namespace", None)
    return str(value) if value else None


def kind_key(info: KindInfo) -> str:
    """How the API names a kind: ``group/Kind`` (``/Pod``, ``apps/Deployment``)."""
    return f"{info.group}/{info.kind}"


def info_for(group: str | None, kind: str) -> KindInfo:
    """The kind the API named in a result (``{"group": "apps", "kind": "Deployment"}``)."""
    for info in KINDS:
        if info.kind == kind and info.group == (group or ""):
            return info
    raise KubectlError(f'the server doesn\'t have a resource type "{kind.lower()}"')


def add_dry_run_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dry-run",
        nargs="?",
        const="client",
        default="none",
        choices=("none", "client", "server"),
        help='"client" prints what would be sent, "server" asks the cluster without storing',
    )


def dry_run_suffix(mode: str) -> str:
    return {"client": " (dry run)", "server": " (server dry run)"}.get(mode, "")


# --- samples -------------------------------------------------------------------------------

SAMPLES_PREFIX = "samples/"


def sample_roots() -> list[Path]:
    """Where the samples that ship with meshlet may be: inside the package, or beside
    it (the checkout that an editable install points at)."""
    package = Path(__file__).resolve().parents[1]
    return [package / "samples", *(parent / "samples" for parent in package.parents[:2])]


def resolve_sample(path: str) -> str:
    """``path`` itself, unless it is a relative ``samples/…`` path that does not exist
    here: then the installed sample of that name."""
    if path == "-" or os.path.isabs(path) or os.path.exists(path):
        return path
    if not path.startswith(SAMPLES_PREFIX):
        return path
    relative = path[len(SAMPLES_PREFIX) :]
    for root in sample_roots():
        candidate = root / relative
        if candidate.exists():
            return str(candidate)
    return path
