from __future__ import annotations

import pytest

from meshlet.daemon.images import (
    ImageEntry,
    builtin_catalog,
    container_argv,
    expand_variables,
    normalize_image,
    parse_user_catalog,
)
from meshlet.errors import ConfigError

CATALOG = builtin_catalog("/py")


@pytest.mark.parametrize(
    ("image", "repository"),
    [
        ("docker.io/kennethreitz/httpbin", "kennethreitz/httpbin"),
        ("kennethreitz/httpbin:latest", "kennethreitz/httpbin"),
        ("docker.io/library/busybox:1.36", "busybox"),
        ("curlimages/curl@sha256:abc", "curlimages/curl"),
        ("localhost:5000/team/app:v1", "localhost:5000/team/app"),
    ],
)
def test_normalize_image(image: str, repository: str) -> None:
    assert normalize_image(image) == repository


def test_httpbin_is_gunicorn_with_threaded_workers_on_80() -> None:
    argv = container_argv("docker.io/kong/httpbin", [], [], {}, CATALOG)
    assert argv is not None
    assert argv[:3] == ["/py", "-m", "gunicorn"]
    assert "gthread" in argv and "0.0.0.0:80" in argv and argv[-1] == "httpbin:app"


def test_command_and_args_combine_as_kubernetes_does() -> None:
    catalog = {"app": ImageEntry(entrypoint=("/entry",), cmd=("--default",))}
    assert container_argv("app", [], [], {}, catalog) == ["/entry", "--default"]
    assert container_argv("app", [], ["--x"], {}, catalog) == ["/entry", "--x"]
    assert container_argv("app", ["/bin/sleep"], [], {}, catalog) == ["/bin/sleep"]
    assert container_argv("app", ["/bin/sh"], ["-c", "x"], {}, catalog) == ["/bin/sh", "-c", "x"]


def test_sleep_sample_runs_its_command() -> None:
    argv = container_argv("curlimages/curl", ["/bin/sleep", "infinity"], [], {}, CATALOG)
    assert argv == ["/bin/sleep", "infinity"]


def test_unmapped_image_has_no_program() -> None:
    assert container_argv("example.com/unknown:1", [], [], {}, CATALOG) is None


def test_variables_expand_as_the_kubelet_expands_them() -> None:
    env = {"POD_NAME": "p", "X": "1"}
    assert expand_variables("$(POD_NAME)-$(X)", env) == "p-1"
    assert expand_variables("$$(POD_NAME)", env) == "$(POD_NAME)"
    assert expand_variables("$(MISSING)", env) == "$(MISSING)"


def test_user_catalog_adds_and_overrides() -> None:
    text = "images:\n  example.com/team/app:v2:\n    entrypoint: [/usr/bin/app]\n    cmd: [--port, '8080']\n"
    catalog = parse_user_catalog(text, "images.yaml")
    assert catalog == {"example.com/team/app": ImageEntry(("/usr/bin/app",), ("--port", "8080"))}
    assert parse_user_catalog("", "images.yaml") == {}


@pytest.mark.parametrize(
    "text",
    [
        "images: [1]",
        "images:\n  app: {run: x}",
        "images:\n  app: {cmd: 3}",
        "images: {a: {cmd: [1]}}",
        "[:",
    ],
)
def test_user_catalog_errors(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_user_catalog(text, "images.yaml")
