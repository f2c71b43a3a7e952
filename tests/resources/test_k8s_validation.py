"""Kubernetes validation: the API server's rules and messages, each at its line."""

from __future__ import annotations

import json
from pathlib import Path as FsPath

import pytest

from meshlet.errors import ErrorList
from meshlet.resources.kinds import lookup
from meshlet.resources.loader import decode_text
from meshlet.resources.objects import Resource
from meshlet.resources.validation import Level
from meshlet.resources.validation.kubernetes import (
    dns1123_label_errors,
    dns1123_subdomain_errors,
    label_key_errors,
    label_value_errors,
    port_name_errors,
    selector_matches,
    validate_kubernetes,
)
from meshlet.resources.yamlsource import parse_documents
from tests import manifests

LABEL_MESSAGE = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
    "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
SUBDOMAIN_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
    "or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_KEY_NAME_MESSAGE = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and "
    "end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex "
    "used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
LABEL_VALUE_MESSAGE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' "
    "or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    "'my_value',  or '12345', regex used for validation is "
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
CONFIG_KEY_MESSAGE = (
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. "
    "'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
)
PORT_RANGE = "must be between 1 and 65535, inclusive"


def findings(text: str) -> list[tuple[str, int | None]]:
    """``(message, line)`` of every finding for every object of ``text``."""
    out = []
    for resource in decode_text(text, "f.yaml"):
        for finding in validate_kubernetes(resource):
            assert finding.level is Level.ERROR
            out.append((finding.message, resource.location_of(finding.path).line))
    return out


# --- what must pass ------------------------------------------------------------------------

SECRET = """\
apiVersion: v1
kind: Secret
metadata:
  name: httpbin-mtls-termination
type: kubernetes.io/tls
data:
  tls.crt: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==
  tls.key: LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tCg==
"""
SCENARIO = manifests.join(manifests.TEST_NAMESPACE, manifests.HTTPBIN, SECRET)


def test_the_scenario_is_valid() -> None:
    assert findings(SCENARIO) == []


def test_what_kubectl_prints_is_valid() -> None:
    from tests.resources.test_k8s_models import (
        KUBECTL_CONFIG_MAP,
        KUBECTL_DEPLOYMENT,
        KUBECTL_NAMESPACE,
        KUBECTL_POD,
        KUBECTL_SECRET_GENERIC,
        KUBECTL_SECRET_TLS,
        KUBECTL_SERVICE,
        KUBECTL_SERVICE_ACCOUNT,
    )

    for text in (
        KUBECTL_CONFIG_MAP,
        KUBECTL_DEPLOYMENT,
        KUBECTL_NAMESPACE,
        KUBECTL_POD,
        KUBECTL_SECRET_GENERIC,
        KUBECTL_SECRET_TLS,
        KUBECTL_SERVICE,
        KUBECTL_SERVICE_ACCOUNT,
    ):
        assert findings(text) == []


def test_what_the_api_server_stored_is_valid(api_schemas: FsPath) -> None:
    """The objects a real API server returned (with status and managedFields) pass too."""
    checked = 0
    for name in (
        "list-namespaces.json",
        "list-services-test.json",
        "list-deployments-test.json",
        "list-pods-test.json",
        "list-secrets-test.json",
    ):
        listing = json.loads((api_schemas / "kubernetes-api" / name).read_text())
        kind = listing["kind"].removesuffix("List")
        for stored in listing["items"]:
            item = {**stored, "apiVersion": listing["apiVersion"], "kind": kind}
            text = json.dumps(item, indent=2)
            (resource,) = decode_text(text, name)
            assert validate_kubernetes(resource) == [], item["metadata"]["name"]
            checked += 1
    assert checked >= 10


# --- the copy-paste mistake, caught by the schema ----------------------------------------

MISINDENTED_SELECTOR = manifests.HTTPBIN_SERVICE.replace(
    "  selector:\n    app: httpbin\n", "    selector:\n      app: httpbin\n"
)
SELECTOR_LINE = manifests.line_of(MISINDENTED_SELECTOR, "    selector:")


def test_selector_indented_under_the_last_port() -> None:
    with pytest.raises(ErrorList) as caught:
        decode_text(MISINDENTED_SELECTOR, "httpbin.yaml")
    (error,) = caught.value.errors
    assert error.message == 'unknown field "spec.ports[1].selector"'
    assert str(error.location) == f"httpbin.yaml:{SELECTOR_LINE}"
    assert str(error.resource) == "Service httpbin"
    assert str(error) == (
        f'httpbin.yaml:{SELECTOR_LINE} Service httpbin: unknown field "spec.ports[1].selector"'
    )


# --- names, labels and annotations --------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: Test_ns}\n",
            [(f'metadata.name: Invalid value: "Test_ns": {LABEL_MESSAGE}', 3)],
        ),
        (
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: team.a}\n",
            ['metadata.name: Invalid value: "team.a": must not contain dots'],
        ),
        (
            "apiVersion: v1\nkind: Service\nmetadata: {name: 1web}\nspec: {ports: [{port: 80}]}\n",
            [],
        ),
        (
            "apiVersion: v1\nkind: Service\nmetadata: {name: web.v1}\nspec: {ports: [{port: 80}]}\n",
            ['metadata.name: Invalid value: "web.v1": must not contain dots'],
        ),
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: My_Config}\n",
            [f'metadata.name: Invalid value: "My_Config": {SUBDOMAIN_MESSAGE}'],
        ),
        ("apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: a.b-c}\n", []),
        (
            "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: " + "a" * 254 + "\n",
            [
                'metadata.name: Invalid value: "'
                + "a" * 254
                + '": must be no more than 253 characters'
            ],
        ),
        (
            "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: sa, namespace: Prod}\n",
            [f'metadata.namespace: Invalid value: "Prod": {LABEL_MESSAGE}'],
        ),
        (
            "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: sa\n  labels:\n"
            "    ok: fine\n    bad key: x\n    app: -bad\n",
            [
                (f'metadata.labels: Invalid value: "bad key": {LABEL_KEY_NAME_MESSAGE}', 7),
                (f'metadata.labels: Invalid value: "-bad": {LABEL_VALUE_MESSAGE}', 8),
            ],
        ),
        (
            "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: sa\n  annotations:\n"
            "    Example.COM/Owner: x\n    /empty: x\n",
            [('metadata.annotations: Invalid value: "/empty": prefix part must be non-empty', 7)],
        ),
    ],
)
def test_metadata(text: str, expected: list[tuple[str, int] | str]) -> None:
    got = findings(text)
    if expected and isinstance(expected[0], str):
        assert [message for message, _ in got] == expected
    else:
        assert got == expected


# --- Service ----------------------------------------------------------------------------


def service(spec: str) -> str:
    return f"apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n{spec}"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("  ports:\n  - port: 80\n", []),
        ("  ports:\n  - port: 80\n    targetPort: 0\n", []),
        ("  ports:\n  - port: 0\n", [(f"spec.ports[0].port: Invalid value: 0: {PORT_RANGE}", 7)]),
        (
            "  ports:\n  - port: 70000\n    targetPort: 70001\n",
            [
                (f"spec.ports[0].port: Invalid value: 70000: {PORT_RANGE}", 7),
                (f"spec.ports[0].targetPort: Invalid value: 70001: {PORT_RANGE}", 8),
            ],
        ),
        (
            "  ports:\n  - port: 80\n    name: http\n  - port: 81\n",
            [("spec.ports[1].name: Required value", 9)],
        ),
        (
            "  ports:\n  - port: 80\n    name: http\n  - port: 81\n    name: http\n",
            [('spec.ports[1].name: Duplicate value: "http"', 10)],
        ),
        (
            "  ports:\n  - port: 80\n    name: HTTP\n",
            [(f'spec.ports[0].name: Invalid value: "HTTP": {LABEL_MESSAGE}', 8)],
        ),
        (
            "  ports:\n  - port: 80\n    targetPort: Web_Port-\n",
            [
                (
                    'spec.ports[0].targetPort: Invalid value: "Web_Port-": '
                    "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
                    8,
                ),
                (
                    'spec.ports[0].targetPort: Invalid value: "Web_Port-": '
                    "must not begin or end with a hyphen",
                    8,
                ),
            ],
        ),
        ("  ports:\n  - port: 80\n    targetPort: http-alt\n", []),
        (
            "  ports:\n  - port: 80\n    name: a\n  - port: 80\n    name: b\n",
            [
                (
                    'spec.ports[1]: Duplicate value: core.ServicePort{Name:"", Protocol:"TCP", '
                    "AppProtocol:(*string)(nil), Port:80, TargetPort:intstr.IntOrString{Type:0, "
                    'IntVal:0, StrVal:""}, NodePort:0}',
                    9,
                )
            ],
        ),
        ("  ports:\n  - {port: 53, name: a}\n  - {port: 53, name: b, protocol: UDP}\n", []),
        (
            "  ports:\n  - port: 80\n    protocol: HTTP\n",
            [
                (
                    'spec.ports[0].protocol: Unsupported value: "HTTP": supported values: '
                    '"SCTP", "TCP", "UDP"',
                    8,
                )
            ],
        ),
        (
            "  type: Internal\n  ports:\n  - port: 80\n",
            [
                (
                    'spec.type: Unsupported value: "Internal": supported values: "ClusterIP", '
                    '"ExternalName", "LoadBalancer", "NodePort"',
                    6,
                )
            ],
        ),
        ("  selector: {app: web}\n", [("spec.ports: Required value", 5)]),
        ("  clusterIP: None\n  selector: {app: web}\n", []),
        ("  type: ExternalName\n  externalName: example.com\n", []),
        (
            "  clusterIP: 10.96.0.300\n  ports: [{port: 80}]\n",
            [
                (
                    'spec.clusterIP: Invalid value: "10.96.0.300": must be a valid IP address '
                    "(e.g. 10.9.8.7 or 2001:db8::ffff)",
                    6,
                )
            ],
        ),
        (
            "  ports: [{port: 80}]\n  selector:\n    app: web app\n",
            [(f'spec.selector: Invalid value: "web app": {LABEL_VALUE_MESSAGE}', 8)],
        ),
    ],
)
def test_service(spec: str, expected: list[tuple[str, int]]) -> None:
    assert findings(service(spec)) == expected


# --- Deployment ---------------------------------------------------------------------------


def deployment(
    selector: str = "    matchLabels: {app: httpbin, version: v1}\n",
    labels: str = "        labels: {app: httpbin, version: v1}\n",
    spec_extra: str = "",
    pod_extra: str = "",
) -> str:
    return (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: httpbin\nspec:\n"
        f"{spec_extra}  selector:\n{selector}  template:\n    metadata:\n{labels}"
        "    spec:\n      containers:\n      - name: httpbin\n        image: httpbin\n"
        f"{pod_extra}"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (deployment(), []),
        (
            deployment(labels="        labels: {app: httpbin}\n"),
            [
                (
                    'spec.template.metadata.labels: Invalid value: map[string]string{"app":"httpbin"}: '
                    "`selector` does not match template `labels`",
                    10,
                )
            ],
        ),
        (
            deployment(labels="        annotations: {a: b}\n"),
            [
                (
                    "spec.template.metadata.labels: Invalid value: map[string]string(nil): "
                    "`selector` does not match template `labels`",
                    8,
                )
            ],
        ),
        (
            deployment(
                selector="    matchExpressions:\n    - {key: app, operator: In, values: [httpbin]}\n"
            ),
            [],
        ),
        (
            deployment(
                selector="    matchExpressions:\n    - {key: version, operator: NotIn, values: [v1]}\n"
            ),
            [
                (
                    "spec.template.metadata.labels: Invalid value: "
                    'map[string]string{"app":"httpbin", "version":"v1"}: '
                    "`selector` does not match template `labels`",
                    11,
                )
            ],
        ),
        (
            deployment(selector="    matchExpressions:\n    - {key: app, operator: In}\n"),
            [
                (
                    "spec.selector.matchExpressions[0].values: Required value: "
                    "must be specified when `operator` is 'In' or 'NotIn'",
                    8,
                )
            ],
        ),
        (
            deployment(selector="    matchExpressions:\n    - {key: app, operator: Equals}\n"),
            [
                (
                    'spec.selector.matchExpressions[0].operator: Invalid value: "Equals": '
                    "not a valid selector operator",
                    8,
                )
            ],
        ),
        (
            deployment(selector="    matchLabels: {}\n"),
            [
                (
                    "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{}, "
                    "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: "
                    "empty selector is invalid for deployment",
                    6,
                )
            ],
        ),
        (
            deployment(spec_extra="  replicas: -1\n"),
            [("spec.replicas: Invalid value: -1: must be greater than or equal to 0", 6)],
        ),
        (
            deployment(pod_extra="      restartPolicy: Never\n"),
            [
                (
                    'spec.template.spec.restartPolicy: Unsupported value: "Never": '
                    'supported values: "Always"',
                    15,
                )
            ],
        ),
        (
            deployment(spec_extra="  strategy: {type: BlueGreen}\n"),
            [
                (
                    'spec.strategy.type: Unsupported value: "BlueGreen": '
                    'supported values: "Recreate", "RollingUpdate"',
                    6,
                )
            ],
        ),
        (
            deployment(labels="        labels: {app: httpbin, version: v1, bad/key/x: y}\n"),
            [
                (
                    'spec.template.metadata.labels: Invalid value: "bad/key/x": a valid label key '
                    "must consist of alphanumeric characters, '-', '_' or '.', and must start and "
                    "end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or "
                    "'123-abc', regex used for validation is "
                    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain "
                    "prefix and '/' (e.g. 'example.com/MyName')",
                    10,
                )
            ],
        ),
    ],
)
def test_deployment(text: str, expected: list[tuple[str, int]]) -> None:
    assert findings(text) == expected


# --- Pod: containers, ports, volumes -------------------------------------------------------


def pod(spec: str) -> str:
    return f"apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n{spec}"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("  containers: []\n", [("spec.containers: Required value", 6)]),
        (
            "  initContainers:\n  - {name: app, image: i}\n  containers:\n  - {name: app, image: i}\n",
            [('spec.containers[0].name: Duplicate value: "app"', 9)],
        ),
        (
            "  containers:\n  - {name: App, image: i}\n",
            [(f'spec.containers[0].name: Invalid value: "App": {LABEL_MESSAGE}', 7)],
        ),
        ("  containers:\n  - name: app\n", [("spec.containers[0].image: Required value", 7)]),
        (
            "  containers:\n  - name: app\n    image: i\n    imagePullPolicy: Sometimes\n",
            [
                (
                    'spec.containers[0].imagePullPolicy: Unsupported value: "Sometimes": '
                    'supported values: "Always", "IfNotPresent", "Never"',
                    9,
                )
            ],
        ),
        (
            "  containers:\n  - name: app\n    image: i\n    ports:\n    - containerPort: 0\n"
            "    - containerPort: 65536\n    - {containerPort: 80, name: http}\n"
            "    - {containerPort: 81, name: http}\n    - {containerPort: 82, protocol: tcp}\n",
            [
                ("spec.containers[0].ports[0].containerPort: Required value", 10),
                (
                    f"spec.containers[0].ports[1].containerPort: Invalid value: 65536: {PORT_RANGE}",
                    11,
                ),
                ('spec.containers[0].ports[3].name: Duplicate value: "http"', 13),
                (
                    'spec.containers[0].ports[4].protocol: Unsupported value: "tcp": '
                    'supported values: "SCTP", "TCP", "UDP"',
                    14,
                ),
            ],
        ),
        (
            "  containers:\n  - name: app\n    image: i\n    ports:\n"
            "    - {containerPort: 80, name: a-very-long-port-name}\n",
            [
                (
                    'spec.containers[0].ports[0].name: Invalid value: "a-very-long-port-name": '
                    "must be no more than 15 characters",
                    10,
                )
            ],
        ),
        (
            "  containers:\n  - name: app\n    image: i\n    volumeMounts:\n"
            "    - {name: certs, mountPath: /etc/certs}\n",
            [('spec.containers[0].volumeMounts[0].name: Not found: "certs"', 10)],
        ),
        (
            "  volumes:\n  - name: certs\n    secret: {secretName: tls}\n  containers:\n"
            "  - name: app\n    image: i\n    volumeMounts:\n"
            "    - {name: certs, mountPath: /etc/certs}\n    - {name: certs, mountPath: /etc/certs}\n",
            [
                (
                    'spec.containers[0].volumeMounts[1].mountPath: Invalid value: "/etc/certs": '
                    "must be unique",
                    14,
                )
            ],
        ),
        (
            "  volumes:\n  - {name: data, emptyDir: {}}\n  - {name: data, emptyDir: {}}\n"
            "  - {name: both, emptyDir: {}, secret: {secretName: s}}\n"
            "  - {name: nosecret, secret: {}}\n  - {name: nocm, configMap: {}}\n"
            "  - {name: mode, secret: {secretName: s, defaultMode: 1000}}\n"
            "  - {name: Bad_Name}\n"
            "  containers: [{name: app, image: i}]\n",
            [
                ('spec.volumes[1].name: Duplicate value: "data"', 8),
                ("spec.volumes[2].secret: Forbidden: may not specify more than 1 volume type", 9),
                ("spec.volumes[3].secret.secretName: Required value", 10),
                ("spec.volumes[4].configMap.name: Required value", 11),
                (
                    "spec.volumes[5].secret.defaultMode: Invalid value: 1000: "
                    "must be a number between 0 and 0777 (octal), both inclusive",
                    12,
                ),
                (f'spec.volumes[6].name: Invalid value: "Bad_Name": {LABEL_MESSAGE}', 13),
            ],
        ),
        (
            "  containers:\n  - name: app\n    image: i\n    env:\n    - {name: A=B}\n"
            "    - {name: my.env-name}\n",
            [
                (
                    'spec.containers[0].env[0].name: Invalid value: "A=B": a valid environment '
                    "variable name must consist only of printable ASCII characters other than '='",
                    10,
                )
            ],
        ),
        (
            "  serviceAccountName: Web_SA\n  restartPolicy: Sometimes\n"
            "  containers: [{name: app, image: i}]\n",
            [
                (
                    'spec.restartPolicy: Unsupported value: "Sometimes": supported values: '
                    '"Always", "OnFailure", "Never"',
                    7,
                ),
                (f'spec.serviceAccountName: Invalid value: "Web_SA": {SUBDOMAIN_MESSAGE}', 6),
            ],
        ),
    ],
)
def test_pod(spec: str, expected: list[tuple[str, int]]) -> None:
    assert findings(pod(spec)) == expected


# --- Secret and ConfigMap -----------------------------------------------------------------


def secret(body: str) -> str:
    return f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n{body}"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "type: kubernetes.io/tls\ndata:\n  tls.crt: Yw==\n",
            [("data[tls.key]: Required value", 6)],
        ),
        (
            "type: kubernetes.io/tls\n",
            [("data[tls.crt]: Required value", 5), ("data[tls.key]: Required value", 5)],
        ),
        ("type: kubernetes.io/tls\ndata:\n  tls.crt: Yw==\nstringData:\n  tls.key: k\n", []),
        ("type: kubernetes.io/tls\nstringData: {tls.crt: c, tls.key: k}\n", []),
        (
            "data:\n  ok: Yw==\n  ca.crt: -----BEGIN CERTIFICATE-----\n",
            [
                (
                    'data[ca.crt]: Invalid value: "<secret contents redacted>": illegal base64 data '
                    "at input byte 0: the values of data must be base64-encoded; "
                    "write plain text under stringData",
                    7,
                )
            ],
        ),
        (
            "data:\n  bad/key: Yw==\nstringData:\n  ..hidden: x\n",
            [
                (f'data[bad/key]: Invalid value: "bad/key": {CONFIG_KEY_MESSAGE}', 6),
                ("data[..hidden]: Invalid value: \"..hidden\": must not start with '..'", 8),
            ],
        ),
        ("type: kubernetes.io/ssh-auth\ndata: {}\n", [("data[ssh-privatekey]: Required value", 6)]),
        (
            "type: kubernetes.io/basic-auth\n",
            [("data[username]: Required value", 5), ("data[password]: Required value", 5)],
        ),
        ("type: kubernetes.io/basic-auth\nstringData: {password: p}\n", []),
        (
            "type: kubernetes.io/service-account-token\n",
            [("metadata.annotations[kubernetes.io/service-account.name]: Required value", 3)],
        ),
        ("type: example.com/custom\nstringData: {a: b}\n", []),
    ],
)
def test_secret(body: str, expected: list[tuple[str, int]]) -> None:
    assert findings(secret(body)) == expected


def test_secret_too_large() -> None:
    big = "x" * (600 * 1024)
    text = secret(f"stringData:\n  a: {big}\n  b: {big}\n")
    assert findings(text) == [("data: Too long: may not be more than 1048576 bytes", 5)]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("data: {a: b}\nbinaryData: {c: Yw==}\n", []),
        (
            "data:\n  a: text\nbinaryData:\n  a: Yw==\n",
            [('data[a]: Invalid value: "a": duplicate of key present in binaryData', 6)],
        ),
        (
            "binaryData:\n  blob: not*base64\n",
            [
                (
                    'binaryData[blob]: Invalid value: "<binary data>": illegal base64 data at input '
                    "byte 3: the values of binaryData must be base64-encoded",
                    6,
                )
            ],
        ),
        (
            "data:\n  'my key': v\n",
            [(f'data[my key]: Invalid value: "my key": {CONFIG_KEY_MESSAGE}', 6)],
        ),
    ],
)
def test_config_map(body: str, expected: list[tuple[str, int]]) -> None:
    text = f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n{body}"
    assert findings(text) == expected


# --- the rules on their own ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "value", "errors"),
    [
        (dns1123_label_errors, "my-name", []),
        (dns1123_label_errors, "-x", [LABEL_MESSAGE]),
        (dns1123_label_errors, "a" * 64, ["must be no more than 63 characters"]),
        (dns1123_subdomain_errors, "a.b.c", []),
        (dns1123_subdomain_errors, "a..b", [SUBDOMAIN_MESSAGE]),
        (label_key_errors, "app.kubernetes.io/name", []),
        (label_key_errors, "x/", ["name part must be non-empty", LABEL_KEY_NAME_MESSAGE]),
        (
            label_key_errors,
            "Example.com/x",
            ["prefix part " + SUBDOMAIN_MESSAGE],
        ),
        (label_key_errors, "a" * 64, ["name part must be no more than 63 characters"]),
        (label_value_errors, "", []),
        (label_value_errors, "v1.2_3-x", []),
        (label_value_errors, "a b", [LABEL_VALUE_MESSAGE]),
        (port_name_errors, "http", []),
        (port_name_errors, "8080", ["must contain at least one letter (a-z)"]),
        (port_name_errors, "a--b", ["must not contain consecutive hyphens"]),
    ],
)
def test_string_rules(rule: object, value: str, errors: list[str]) -> None:
    assert callable(rule)
    assert rule(value) == errors


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        ({"matchLabels": {"app": "a"}}, {"app": "a", "v": "1"}, True),
        ({"matchLabels": {"app": "a"}}, {"app": "b"}, False),
        (
            {"matchExpressions": [{"key": "v", "operator": "In", "values": ["1", "2"]}]},
            {"v": "2"},
            True,
        ),
        ({"matchExpressions": [{"key": "v", "operator": "In", "values": ["1"]}]}, {}, False),
        ({"matchExpressions": [{"key": "v", "operator": "NotIn", "values": ["1"]}]}, {}, True),
        (
            {"matchExpressions": [{"key": "v", "operator": "NotIn", "values": ["1"]}]},
            {"v": "1"},
            False,
        ),
        ({"matchExpressions": [{"key": "v", "operator": "Exists"}]}, {"v": ""}, True),
        ({"matchExpressions": [{"key": "v", "operator": "DoesNotExist"}]}, {"v": ""}, False),
        ({}, {"anything": "x"}, True),
    ],
)
def test_selector_matches(
    selector: dict[str, object], labels: dict[str, str], matches: bool
) -> None:
    assert selector_matches(selector, labels) is matches


def test_other_kinds_have_no_kubernetes_findings() -> None:
    info = lookup("v1", "Namespace")
    assert info is not None
    (document,) = parse_documents(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: Bad_Name}\n", "x"
    )
    from dataclasses import replace

    other = replace(info, group="example.com", kind="Widget")
    assert validate_kubernetes(Resource(other, "example.com/v1", document.data, document)) == []
    assert validate_kubernetes(Resource(info, "v1", document.data, document)) != []
