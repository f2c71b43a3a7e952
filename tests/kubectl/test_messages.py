"""kubectl's words."""

from __future__ import annotations

import pytest

from meshlet.errors import ExitCode
from meshlet.kubectl import messages as m
from meshlet.kubectl.names import resolve_type


def test_server_errors() -> None:
    assert (
        m.not_found(resolve_type("po"), "x").line
        == 'Error from server (NotFound): pods "x" not found'
    )
    assert m.not_found(resolve_type("ns"), "x").line == (
        'Error from server (NotFound): namespaces "x" not found'
    )
    assert m.not_found(resolve_type("deploy"), "x").line == (
        'Error from server (NotFound): deployments.apps "x" not found'
    )
    assert m.not_found(resolve_type("po"), "x").exit_code is ExitCode.NOT_FOUND
    assert m.already_exists(resolve_type("secret"), "x").line == (
        'Error from server (AlreadyExists): secrets "x" already exists'
    )
    assert m.bad_label_selector(
        resolve_type("po"), "v1", "-x=y", "unable to parse requirement: …"
    ).line == (
        'Error from server (BadRequest): Unable to find "/v1, Resource=pods" that match label '
        'selector "-x=y", field selector "": unable to parse requirement: …'
    )


def test_client_errors() -> None:
    assert (
        m.no_name_specified().line == "error: resource(s) were provided, but no name was specified"
    )
    assert (
        m.unknown_resource_type("x").line == 'error: the server doesn\'t have a resource type "x"'
    )
    assert (
        m.name_with_selector().line == "error: name cannot be provided when a selector is specified"
    )


def test_success_lines() -> None:
    assert m.applied(resolve_type("svc"), "httpbin", "created") == "service/httpbin created"
    assert (
        m.applied(resolve_type("deploy"), "httpbin", "configured")
        == "deployment.apps/httpbin configured"
    )
    assert m.applied(resolve_type("pa"), "default", "unchanged") == (
        "peerauthentication.security.istio.io/default unchanged"
    )
    with pytest.raises(ValueError):
        m.applied(resolve_type("svc"), "x", "deleted")
    assert m.created(resolve_type("ns"), "test") == "namespace/test created"
    assert m.created(resolve_type("secret"), "x", dry_run=True) == "secret/x created (dry run)"
    assert m.labeled(resolve_type("ns"), "test") == "namespace/test labeled"
    assert m.labeled(resolve_type("ns"), "test", changed=False) == "namespace/test not labeled"
    assert (
        m.deleted(resolve_type("secret"), "x", "test") == 'secret "x" deleted from test namespace'
    )
    assert m.deleted(resolve_type("ns"), "test") == 'namespace "test" deleted'
    assert m.deleted(resolve_type("deploy"), "httpbin", "test") == (
        'deployment.apps "httpbin" deleted from test namespace'
    )
    assert m.condition_met(resolve_type("po"), "sleep-557747455f-brzf6") == (
        "pod/sleep-557747455f-brzf6 condition met"
    )
    assert m.restarted(resolve_type("deploy"), "httpbin") == "deployment.apps/httpbin restarted"
    assert m.exec_exit_code(56) == "command terminated with exit code 56"
    assert m.no_resources_found("test") == "No resources found in test namespace."
    assert m.no_resources_found(None) == "No resources found"
