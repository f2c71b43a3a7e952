"""kubectl's JSONPath templates over objects and Lists."""

from __future__ import annotations

from typing import Any

import pytest

from meshlet.kubectl.jsonpath import JSONPathError, parse_template, render_jsonpath
from meshlet.kubectl.messages import KubectlError
from meshlet.kubectl.printers import list_object

SLEEP = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "sleep-557747455f-brzf6", "labels": {"app": "sleep"}},
    "spec": {"containers": [{"name": "sleep"}, {"name": "istio-proxy"}]},
    "status": {"podIP": "10.42.0.7", "phase": "Running"},
}
HTTPBIN = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "httpbin-5bbdbd6588-z9vbs", "labels": {"app": "httpbin"}},
    "spec": {"containers": [{"name": "httpbin"}]},
    "status": {"podIP": "10.42.0.8", "phase": "Running", "ready": True, "weight": 0.5},
}
SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "httpbin"},
    "spec": {
        "ports": [
            {"name": "https", "port": 8443, "targetPort": 9080},
            {"name": "http", "port": 8080, "targetPort": 9081},
        ]
    },
}
PODS = list_object([HTTPBIN, SLEEP])


@pytest.mark.parametrize(
    ("template", "data", "expected"),
    [
        # the scenario: a get with a selector prints a List
        ("{.items..metadata.name}", list_object([SLEEP]), "sleep-557747455f-brzf6"),
        ("{.items..metadata.name}", PODS, "httpbin-5bbdbd6588-z9vbs sleep-557747455f-brzf6"),
        ("{.items[0].metadata.name}", PODS, "httpbin-5bbdbd6588-z9vbs"),
        ("{.items[-1].metadata.name}", PODS, "sleep-557747455f-brzf6"),
        ("{.items[*].status.podIP}", PODS, "10.42.0.8 10.42.0.7"),
        ("{.items[0:1].metadata.name}", PODS, "httpbin-5bbdbd6588-z9vbs"),
        ("{.items[1:].metadata.name}", PODS, "sleep-557747455f-brzf6"),
        ("{.items[::2].metadata.name}", PODS, "httpbin-5bbdbd6588-z9vbs"),
        ("{.items[0,1].status.phase}", PODS, "Running Running"),
        ("{.items[*]['metadata'].labels.app}", PODS, "httpbin sleep"),
        ('{.items[?(@.metadata.name=="sleep-557747455f-brzf6")].status.podIP}', PODS, "10.42.0.7"),
        (
            "{.items[?(@.metadata.labels.app!='sleep')].metadata.name}",
            PODS,
            "httpbin-5bbdbd6588-z9vbs",
        ),
        ("{.items[?(@.status.ready)].metadata.name}", PODS, "httpbin-5bbdbd6588-z9vbs"),
        ("{.items[?(@.status.ready==true)].metadata.name}", PODS, "httpbin-5bbdbd6588-z9vbs"),
        ('{.spec.ports[?(@.name=="http")].port}', SERVICE, "8080"),
        ("{.spec.ports[?(@.port>8080)].name}", SERVICE, "https"),
        ("{.spec.ports[?(@.port==8443)].targetPort}", SERVICE, "9080"),
        ("{.spec.ports[*].port}", SERVICE, "8443 8080"),
        (
            '{range .items[*]}{.metadata.name}{"\\t"}{.status.podIP}{"\\n"}{end}',
            PODS,
            "httpbin-5bbdbd6588-z9vbs\t10.42.0.8\nsleep-557747455f-brzf6\t10.42.0.7\n",
        ),
        (
            "{range .items[*]}[{.metadata.name}]{end}done",
            PODS,
            "[httpbin-5bbdbd6588-z9vbs][sleep-557747455f-brzf6]done",
        ),
        ("{range .items[*]}{.metadata.name}{end}done", list_object([]), ""),  # client-go quirk
        ("name: {.metadata.name}!", SERVICE, "name: httpbin!"),
        ("{.metadata.labels}", SLEEP, '{"app":"sleep"}'),
        ("{.spec.containers[*].name}", SLEEP, "sleep istio-proxy"),
        ("{.spec.ports[0]}", SERVICE, '{"name":"https","port":8443,"targetPort":9080}'),
        ("{.status.ready} {.status.weight}", HTTPBIN, "true 0.5"),
        ("{.missing.field}", SLEEP, ""),
        ("{$.kind}", SERVICE, "Service"),
        ("{..podIP}", SLEEP, "10.42.0.7"),
        ("{.metadata.*}", SLEEP, '{"app":"sleep"} sleep-557747455f-brzf6'),
    ],
)
def test_templates(template: str, data: Any, expected: str) -> None:
    assert render_jsonpath(template, data) == expected


@pytest.mark.parametrize(
    ("template", "error"),
    [
        ("{.x", "unclosed action"),
        ("{.items[0}", "unterminated array"),
        ("{.items[a]}", "invalid array index a"),
        ("{.items[?(@.x=='a']}", "unterminated filter"),
        ('{"abc}', "unterminated quoted string"),
        ("{.a | .b}", "unrecognized character in action: U+007C '|'"),
        ("{....a}", "invalid multiple recursive descent"),
    ],
)
def test_parse_errors(template: str, error: str) -> None:
    with pytest.raises(JSONPathError, match="^" + __import__("re").escape(error) + "$"):
        parse_template(template)
    with pytest.raises(KubectlError) as caught:
        render_jsonpath(template, {})
    assert caught.value.line == f"error: error parsing jsonpath {template}, {error}"


@pytest.mark.parametrize(
    ("template", "error"),
    [
        ("{.items[5].metadata.name}", "array index out of bounds: index 5, length 2"),
        ("{.kind[0]}", "string is not array or slice"),
        ("{end}", "not in range, nothing to end"),
        (
            "{.items[1].spec.containers[1:0].name}",
            "starting index 1 is greater than ending index 0",
        ),
        ("{foo}", "unrecognized identifier foo"),
    ],
)
def test_execution_errors(template: str, error: str) -> None:
    with pytest.raises(KubectlError) as caught:
        render_jsonpath(template, PODS)
    first = caught.value.line.splitlines()[0]
    assert first == (
        f'error: error executing jsonpath "{template}": Error executing template: {error}. '
        "Printing more information for debugging the template:"
    )


def test_missing_keys_can_be_an_error() -> None:
    template = parse_template("{.metadata.nothing}")
    assert template.execute(SLEEP) == ""
    with pytest.raises(JSONPathError, match="nothing is not found"):
        template.execute(SLEEP, allow_missing_keys=False)
