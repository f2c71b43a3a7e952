"""The image catalog: which local program runs for a container's image.

The local cluster runs no image: a container is a program of this machine started in
the pod's namespaces. The catalog maps an image (its repository, without registry
``docker.io``, ``library/``, tag or digest) to what the image would run: its
``entrypoint`` and default ``cmd``. The pod's ``command`` and ``args`` combine with
them as Kubernetes combines them with an image's ``ENTRYPOINT`` and ``CMD``:

- neither given: entrypoint + cmd;
- only ``args``: entrypoint + args;
- ``command`` given: command + args (the image's entrypoint and cmd are ignored).

``$(VAR)`` in command and args is replaced by the container's environment variable
``VAR`` (``$$`` is a literal ``$``; an unknown ``$(VAR)`` stays as written), as the
kubelet expands them.

Built in: ``docker.io/kennethreitz/httpbin`` and ``docker.io/kong/httpbin`` (PyPI's
httpbin served by gunicorn with threaded keep-alive workers on port 80),
``curlimages/curl`` (the host's ``curl``; the ``sleep`` sample gives its own command),
``busybox``, ``alpine``, ``debian`` and ``ubuntu`` (a shell), and the sidecar image
``docker.io/istio/proxyv2`` (``python -m meshlet.proxy.sidecar``). A user adds or
overrides entries in ``MESHLET_HOME/images.yaml``::

    images:
      example.com/team/app:
        entrypoint: ["/usr/local/bin/app"]
        cmd: ["--port", "8080"]

An image with no entry cannot run: the pod reports ``ErrImagePull``.

Pure: the catalog is data; the interpreter's path is passed in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from meshlet.errors import ConfigError, Location

__all__ = [
    "PROXY_IMAGE",
    "ImageEntry",
    "builtin_catalog",
    "container_argv",
    "expand_variables",
    "normalize_image",
    "parse_user_catalog",
]

PROXY_IMAGE = "docker.io/istio/proxyv2:1.24.0"


@dataclass(frozen=True, slots=True)
class ImageEntry:
    """What an image runs: its ``ENTRYPOINT`` and ``CMD``."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()


def normalize_image(image: str) -> str:
    """The repository of an image reference: ``docker.io/library/busybox:1.36`` →
    ``busybox``, ``kennethreitz/httpbin@sha256:…`` → ``kennethreitz/httpbin``."""
    name = image.strip().split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: len(name) - len(last)] + last.split(":", 1)[0]
    for registry in ("docker.io/", "index.docker.io/", "registry-1.docker.io/"):
        if name.startswith(registry):
            name = name[len(registry) :]
            break
    if name.startswith("library/"):
        name = name[len("library/") :]
    return name.lower()


def builtin_catalog(python: str) -> dict[str, ImageEntry]:
    """The images meshlet runs out of the box; ``python`` is the interpreter to use."""
    httpbin = ImageEntry(
        cmd=(
            python, "-m", "gunicorn", "-k", "gthread", "--threads", "8",
            "-b", "0.0.0.0:80", "--access-logfile", "-", "httpbin:app",
        )
    )  # fmt: skip
    return {
        "kennethreitz/httpbin": httpbin,
        "kong/httpbin": httpbin,
        "mccutchen/go-httpbin": httpbin,
        "curlimages/curl": ImageEntry(entrypoint=("curl",)),
        "busybox": ImageEntry(cmd=("sh",)),
        "alpine": ImageEntry(cmd=("/bin/sh",)),
        "debian": ImageEntry(cmd=("bash",)),
        "ubuntu": ImageEntry(cmd=("bash",)),
        "istio/proxyv2": ImageEntry(entrypoint=(python, "-m", "meshlet.proxy.sidecar")),
    }


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{where} must be a list of strings")
    return tuple(value)


def parse_user_catalog(text: str, filename: str) -> dict[str, ImageEntry]:
    """The entries of an ``images.yaml`` (see the module's docstring)."""
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"invalid YAML: {error}", location=Location(filename)) from None
    if data is None:
        return {}
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, dict):
        raise ConfigError('expected a mapping "images:"', location=Location(filename))
    catalog: dict[str, ImageEntry] = {}
    for image, entry in sorted(images.items()):
        if not isinstance(entry, dict) or set(entry) - {"entrypoint", "cmd"}:
            raise ConfigError(
                f'image "{image}": expected "entrypoint" and/or "cmd" lists',
                location=Location(filename),
            )
        catalog[normalize_image(str(image))] = ImageEntry(
            entrypoint=_strings(entry.get("entrypoint"), f"{filename}: {image}: entrypoint"),
            cmd=_strings(entry.get("cmd"), f"{filename}: {image}: cmd"),
        )
    return catalog


_VARIABLE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand_variables(text: str, env: Mapping[str, str]) -> str:
    """``$(VAR)`` replaced as the kubelet does (``$$`` → ``$``, unknown left as is)."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env[name] if name in env else match.group(0)

    return _VARIABLE.sub(replace, text)


def container_argv(
    image: str,
    command: Sequence[str],
    args: Sequence[str],
    env: Mapping[str, str],
    catalog: Mapping[str, ImageEntry],
) -> list[str] | None:
    """The program a container runs, or ``None`` when the image is not in the catalog."""
    entry = catalog.get(normalize_image(image))
    if entry is None:
        return None
    if command:
        argv = [*command, *args]
    elif args:
        argv = [*entry.entrypoint, *args]
    else:
        argv = [*entry.entrypoint, *entry.cmd]
    if not argv:
        return None
    return [expand_variables(item, env) for item in argv]
