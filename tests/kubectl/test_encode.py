"""-o yaml and -o json, byte for byte as kubectl writes them."""

from __future__ import annotations

import pytest

from meshlet.kubectl.encode import go_float, to_json, to_json_compact, to_yaml, yaml_key_order


@pytest.mark.parametrize(
    ("value", "line"),
    [
        ("plain", "v: plain"),
        ("true", 'v: "true"'),
        ("yes", 'v: "yes"'),
        ("Off", 'v: "Off"'),
        ("null", 'v: "null"'),
        ("~", 'v: "~"'),
        ("", 'v: ""'),
        ("8080", 'v: "8080"'),
        ("0x1F", 'v: "0x1F"'),
        ("1e3", 'v: "1e3"'),
        (".5", 'v: ".5"'),
        ("1:20", 'v: "1:20"'),  # a base-60 number to YAML 1.1
        ("2022-02-14T09:51:56Z", 'v: "2022-02-14T09:51:56Z"'),
        ("2022-02-14", 'v: "2022-02-14"'),
        ("2022-13-14", "v: 2022-13-14"),
        ("10.96.0.1", "v: 10.96.0.1"),
        ("8443/TCP", "v: 8443/TCP"),
        ("- item", "v: '- item'"),
        ("a: b", "v: 'a: b'"),
        ("a #b", "v: 'a #b'"),
        ("a#b", "v: a#b"),
        ("*star", "v: '*star'"),
        ("it's", "v: it's"),
        ("'quoted'", "v: '''quoted'''"),
        (" lead", "v: ' lead'"),
        ("tab\there", 'v: "tab\\there"'),
        ("<<", "v: <<"),
        ("docker.io/kennethreitz/httpbin", "v: docker.io/kennethreitz/httpbin"),
        (
            '{"tls-secret":{"secret":{"optional":true}}}',
            'v: \'{"tls-secret":{"secret":{"optional":true}}}\'',
        ),
        (8443, "v: 8443"),
        (0.5, "v: 0.5"),
        (1e6, "v: 1e+06"),
        (True, "v: true"),
        (None, "v: null"),
        ({}, "v: {}"),
        ([], "v: []"),
    ],
)
def test_scalars(value: object, line: str) -> None:
    assert to_yaml({"v": value}) == line + "\n"


def test_structure_and_literal_blocks() -> None:
    obj = {
        "kind": "Secret",
        "apiVersion": "v1",
        "data": {"ca.crt": "LS0t", "tls.key": "LS0u"},
        "metadata": {"name": "x", "labels": {"9080": "port", "y": "bool key"}},
        "spec": {
            "ports": [{"port": 8443, "name": "https"}, {"port": 8080}],
            "nested": [[1, 2], ["a"]],
        },
        "pem": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        "two": "a\nb",
        "kept": "a\n\n",
        "indented": "  x\ny\n",
    }
    assert to_yaml(obj) == (
        "apiVersion: v1\n"
        "data:\n"
        "  ca.crt: LS0t\n"
        "  tls.key: LS0u\n"
        "indented: |2\n"
        "    x\n"
        "  y\n"
        "kept: |+\n"
        "  a\n"
        "\n"
        "kind: Secret\n"
        "metadata:\n"
        "  labels:\n"
        '    "9080": port\n'
        '    "y": bool key\n'
        "  name: x\n"
        "pem: |\n"
        "  -----BEGIN CERTIFICATE-----\n"
        "  MIIB\n"
        "  -----END CERTIFICATE-----\n"
        "spec:\n"
        "  nested:\n"
        "  - - 1\n"
        "    - 2\n"
        "  - - a\n"
        "  ports:\n"
        "  - name: https\n"
        "    port: 8443\n"
        "  - port: 8080\n"
        "two: |-\n"
        "  a\n"
        "  b\n"
    )


def test_long_text_folds_past_column_80() -> None:
    message = (
        "containers with unready status: [httpbin istio-proxy] and the rest of a long reason text"
    )
    assert to_yaml({"status": {"message": message}}) == (
        "status:\n"
        "  message: 'containers with unready status: [httpbin istio-proxy] and the rest of\n"
        "    a long reason text'\n"
    )
    words = "word " * 20 + "end"
    folded = to_yaml({"m": words})
    assert folded.splitlines()[1].startswith("  word")
    assert all(len(line) <= 90 for line in folded.splitlines())


def test_go_yaml_key_order() -> None:
    keys = ["b", "a10", "a9", "a_b", "aB", "-x", "A"]
    ordered = sorted(
        keys,
        key=__import__("functools").cmp_to_key(
            lambda x, y: -1 if yaml_key_order(x, y) else (1 if yaml_key_order(y, x) else 0)
        ),
    )
    assert ordered == ["-x", "A", "a_b", "a9", "a10", "aB", "b"]


def test_top_level_list_and_scalar() -> None:
    assert to_yaml([{"a": 1}, "x"]) == "- a: 1\n- x\n"
    assert to_yaml({}) == "{}\n"


def test_json_as_go_marshal_indent() -> None:
    assert to_json({"b": [1, {"c": "<none> & more"}], "a": {}, "e": [], "f": 0.5, "n": None}) == (
        "{\n"
        '    "a": {},\n'
        '    "b": [\n'
        "        1,\n"
        "        {\n"
        '            "c": "\\u003cnone\\u003e \\u0026 more"\n'
        "        }\n"
        "    ],\n"
        '    "e": [],\n'
        '    "f": 0.5,\n'
        '    "n": null\n'
        "}\n"
    )
    assert (
        to_json_compact({"b": 1, "a": [True, 1e-7, 1e21, 2.0]}) == '{"a":[true,1e-7,1e+21,2],"b":1}'
    )


@pytest.mark.parametrize(
    ("value", "fmt", "text"),
    [
        (1.0, "g", "1"),
        (1e6, "g", "1e+06"),
        (123456.0, "g", "123456"),
        (1e-5, "g", "1e-05"),
        (0.0001, "g", "0.0001"),
        (-2.5, "f", "-2.5"),
        (1e-7, "f", "0.0000001"),
    ],
)
def test_go_float(value: float, fmt: str, text: str) -> None:
    assert go_float(value, fmt) == text
