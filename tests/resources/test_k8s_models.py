"""Typed Kubernetes models: decoding, the API server's defaults, and kubectl's output."""

from __future__ import annotations

import base64
from dataclasses import FrozenInstanceError
from typing import Any

import pytest

from meshlet.errors import ConfigError
from meshlet.resources import k8s
from meshlet.resources.kinds import KindInfo
from meshlet.resources.kinds.meta import top_level
from meshlet.resources.loader import decode_text
from meshlet.resources.objects import Resource
from meshlet.resources.yamlsource import parse_documents
from tests import manifests


def one(text: str, namespace: str | None = None) -> Resource:
    (resource,) = decode_text(text, "test.yaml")
    return resource.in_namespace(namespace) if namespace else resource


def model(text: str, namespace: str | None = None) -> Any:
    return k8s.from_resource(one(text, namespace))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- what `kubectl create … --dry-run=client -o yaml` prints ----------------------------

KUBECTL_NAMESPACE = """\
apiVersion: v1
kind: Namespace
metadata:
  creationTimestamp: null
  name: test
spec: {}
status: {}
"""

KUBECTL_DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  creationTimestamp: null
  labels:
    app: web
  name: web
spec:
  replicas: 1
  selector:
    matchLabels:
      app: web
  strategy: {}
  template:
    metadata:
      creationTimestamp: null
      labels:
        app: web
    spec:
      containers:
      - image: nginx
        name: nginx
        ports:
        - containerPort: 80
        resources: {}
status: {}
"""

KUBECTL_SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  creationTimestamp: null
  labels:
    app: web
  name: web
spec:
  ports:
  - name: 80-8080
    port: 80
    protocol: TCP
    targetPort: 8080
  selector:
    app: web
  type: ClusterIP
status:
  loadBalancer: {}
"""

KUBECTL_SERVICE_ACCOUNT = """\
apiVersion: v1
kind: ServiceAccount
metadata:
  creationTimestamp: null
  name: httpbin
  namespace: test
"""

KUBECTL_SECRET_GENERIC = """\
apiVersion: v1
data:
  ca.crt: YWJj
kind: Secret
metadata:
  creationTimestamp: null
  name: cacert
  namespace: test
"""

CERT_PEM = b"-----BEGIN CERTIFICATE-----\n"
KEY_PEM = b"-----BEGIN PRIVATE KEY-----\n"

KUBECTL_SECRET_TLS = f"""\
apiVersion: v1
data:
  tls.crt: {b64(CERT_PEM)}
  tls.key: {b64(KEY_PEM)}
kind: Secret
metadata:
  creationTimestamp: null
  name: httpbin-mtls-termination
  namespace: test
type: kubernetes.io/tls
"""

KUBECTL_CONFIG_MAP = """\
apiVersion: v1
data:
  a: b
kind: ConfigMap
metadata:
  creationTimestamp: null
  name: cfg
"""

KUBECTL_POD = """\
apiVersion: v1
kind: Pod
metadata:
  creationTimestamp: null
  labels:
    run: sleep
  name: sleep
spec:
  containers:
  - args:
    - sleep
    - "3600"
    image: curlimages/curl
    name: sleep
    resources: {}
  dnsPolicy: ClusterFirst
  restartPolicy: Always
status: {}
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (KUBECTL_NAMESPACE, k8s.Namespace("test", {})),
        (KUBECTL_SERVICE_ACCOUNT, k8s.ServiceAccount("httpbin", "test")),
        (
            KUBECTL_SERVICE,
            k8s.Service(
                name="web",
                namespace="default",
                labels={"app": "web"},
                selector={"app": "web"},
                ports=(k8s.ServicePort("80-8080", 80, 8080, "TCP", None),),
                cluster_ip=None,
                type="ClusterIP",
            ),
        ),
        (
            KUBECTL_DEPLOYMENT,
            k8s.Deployment(
                name="web",
                namespace="default",
                labels={"app": "web"},
                replicas=1,
                match_labels={"app": "web"},
                template=k8s.PodTemplate(
                    labels={"app": "web"},
                    annotations={},
                    spec=k8s.PodSpec(
                        containers=(
                            k8s.Container(
                                name="nginx",
                                image="nginx",
                                command=(),
                                args=(),
                                env=(),
                                ports=(k8s.ContainerPort(80, None, "TCP"),),
                                volume_mounts=(),
                                image_pull_policy=None,
                            ),
                        ),
                        init_containers=(),
                        volumes=(),
                        service_account_name="default",
                        termination_grace_period_seconds=None,
                    ),
                ),
            ),
        ),
        (
            KUBECTL_POD,
            k8s.Pod(
                name="sleep",
                namespace="default",
                labels={"run": "sleep"},
                annotations={},
                spec=k8s.PodSpec(
                    containers=(
                        k8s.Container(
                            name="sleep",
                            image="curlimages/curl",
                            command=(),
                            args=("sleep", "3600"),
                            env=(),
                            ports=(),
                            volume_mounts=(),
                            image_pull_policy=None,
                        ),
                    ),
                    init_containers=(),
                    volumes=(),
                    service_account_name="default",
                    termination_grace_period_seconds=None,
                ),
            ),
        ),
        (KUBECTL_SECRET_GENERIC, k8s.Secret("cacert", "test", "Opaque", {"ca.crt": b"abc"})),
        (
            KUBECTL_SECRET_TLS,
            k8s.Secret(
                "httpbin-mtls-termination",
                "test",
                "kubernetes.io/tls",
                {"tls.crt": CERT_PEM, "tls.key": KEY_PEM},
            ),
        ),
        (KUBECTL_CONFIG_MAP, k8s.ConfigMap("cfg", "default", {"a": "b"}, {})),
    ],
    ids=lambda value: value.split("kind: ")[1].split("\n")[0] if isinstance(value, str) else "",
)
def test_what_kubectl_prints_decodes(text: str, expected: Any) -> None:
    assert model(text) == expected


# --- the scenario's objects -------------------------------------------------------------


def test_the_scenario_decodes_in_its_namespace() -> None:
    values = [
        k8s.from_resource(r.in_namespace("test")) for r in decode_text(manifests.HTTPBIN, "s.yaml")
    ]
    account, service, deployment = values
    assert account == k8s.ServiceAccount("httpbin", "test")
    assert isinstance(service, k8s.Service)
    assert service.namespace == "test"
    assert service.ports == (
        k8s.ServicePort("https", 8443, 9080, "TCP", None),
        k8s.ServicePort("http", 8080, 9081, "TCP", None),
    )
    assert isinstance(deployment, k8s.Deployment)
    assert deployment.match_labels == {"app": "httpbin", "version": "v1"}
    assert deployment.template.labels == {"app": "httpbin", "version": "v1"}
    assert "sidecar.istio.io/userVolume" in deployment.template.annotations
    spec = deployment.template.spec
    assert spec.service_account_name == "httpbin"
    assert spec.containers[0].image_pull_policy == "IfNotPresent"
    assert spec.containers[0].ports == (k8s.ContainerPort(80, None, "TCP"),)
    assert spec.container("httpbin") is spec.containers[0]
    assert spec.container("istio-proxy") is None


# --- defaults, table-driven --------------------------------------------------------------


def service_with(ports: str, extra: str = "") -> str:
    return f"""\
apiVersion: v1
kind: Service
metadata: {{name: s, namespace: ns}}
spec:
  ports:
{ports}
{extra}"""


@pytest.mark.parametrize(
    ("ports", "expected"),
    [
        ("  - port: 80", k8s.ServicePort("", 80, 80, "TCP", None)),
        ("  - {port: 80, targetPort: 0}", k8s.ServicePort("", 80, 80, "TCP", None)),
        ("  - {port: 80, targetPort: ''}", k8s.ServicePort("", 80, 80, "TCP", None)),
        ("  - {port: 80, targetPort: http}", k8s.ServicePort("", 80, "http", "TCP", None)),
        (
            "  - {port: 53, protocol: UDP, name: dns, appProtocol: dns}",
            k8s.ServicePort("dns", 53, 53, "UDP", "dns"),
        ),
        ("  - {port: 80, protocol: null}", k8s.ServicePort("", 80, 80, "TCP", None)),
    ],
)
def test_service_port_defaults(ports: str, expected: k8s.ServicePort) -> None:
    service = model(service_with(ports))
    assert service.ports == (expected,)


@pytest.mark.parametrize(
    ("extra", "selector", "cluster_ip", "kind"),
    [
        ("", None, None, "ClusterIP"),
        ("  selector: {}", None, None, "ClusterIP"),
        ("  selector: {app: a}\n  clusterIP: None", {"app": "a"}, "None", "ClusterIP"),
        ("  clusterIP: 10.96.0.10\n  type: NodePort", None, "10.96.0.10", "NodePort"),
    ],
)
def test_service_selector_cluster_ip_and_type(
    extra: str, selector: dict[str, str] | None, cluster_ip: str | None, kind: str
) -> None:
    service = model(service_with("  - port: 80", extra))
    assert (service.selector, service.cluster_ip, service.type) == (selector, cluster_ip, kind)


def pod_with(spec: str, metadata: str = "name: p") -> str:
    return f"apiVersion: v1\nkind: Pod\nmetadata: {{{metadata}}}\nspec:\n{spec}"


@pytest.mark.parametrize(
    ("spec", "account"),
    [
        ("  containers: [{name: c, image: i}]", "default"),
        ("  serviceAccountName: sa\n  containers: [{name: c, image: i}]", "sa"),
        ("  serviceAccount: old\n  containers: [{name: c, image: i}]", "old"),
        ("  serviceAccountName: new\n  serviceAccount: old\n  containers: [{name: c}]", "new"),
    ],
)
def test_pod_service_account(spec: str, account: str) -> None:
    assert model(pod_with(spec)).spec.service_account_name == account


VOLUMES_POD = pod_with("""\
  terminationGracePeriodSeconds: 5
  initContainers:
  - name: init
    image: busybox
    command: [sh, -c, "true"]
  containers:
  - name: app
    image: app
    env:
    - {name: A, value: "1"}
    - {name: B}
    - name: C
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    ports:
    - {containerPort: 8080, name: http}
    - {containerPort: 53, protocol: UDP}
    volumeMounts:
    - {name: certs, mountPath: /etc/certs, readOnly: true}
    - {name: conf, mountPath: /etc/conf, subPath: app.conf}
    - {name: scratch, mountPath: /tmp}
  volumes:
  - name: certs
    secret: {secretName: tls, optional: true}
  - name: conf
    configMap: {name: settings}
  - name: scratch
    emptyDir: {}
  - name: defaulted
  - name: host
    hostPath: {path: /var/log}
""")


def test_pod_containers_and_volumes() -> None:
    pod = model(VOLUMES_POD, "ns")
    assert pod.namespace == "ns"
    spec = pod.spec
    assert spec.termination_grace_period_seconds == 5
    assert spec.init_containers[0].command == ("sh", "-c", "true")
    app = spec.containers[0]
    assert app.env == (k8s.EnvVar("A", "1"), k8s.EnvVar("B", ""), k8s.EnvVar("C", None))
    assert app.ports == (
        k8s.ContainerPort(8080, "http", "TCP"),
        k8s.ContainerPort(53, None, "UDP"),
    )
    assert app.volume_mounts == (
        k8s.VolumeMount("certs", "/etc/certs", True, None),
        k8s.VolumeMount("conf", "/etc/conf", False, "app.conf"),
        k8s.VolumeMount("scratch", "/tmp", False, None),
    )
    assert spec.volumes == (
        k8s.Volume("certs", "tls", None, False, True),
        k8s.Volume("conf", None, "settings", False, False),
        k8s.Volume("scratch", None, None, True, False),
        k8s.Volume("defaulted", None, None, True, False),  # no source: the API's emptyDir
        k8s.Volume("host", None, None, False, False),
    )


@pytest.mark.parametrize(
    ("replicas", "expected"), [("", 1), ("  replicas: 3\n", 3), ("  replicas: 0\n", 0)]
)
def test_deployment_replicas(replicas: str, expected: int) -> None:
    text = f"""\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: d}}
spec:
{replicas}  selector: {{matchLabels: {{app: d}}}}
  template:
    metadata: {{labels: {{app: d}}}}
    spec: {{containers: [{{name: c, image: i}}]}}
"""
    assert model(text).replicas == expected


def secret_with(body: str) -> str:
    return f"apiVersion: v1\nkind: Secret\nmetadata: {{name: s, namespace: ns}}\n{body}"


@pytest.mark.parametrize(
    ("body", "kind", "data"),
    [
        ("", "Opaque", {}),
        (f"data: {{a: {b64(b'one')}}}", "Opaque", {"a": b"one"}),
        ("stringData: {a: plain}", "Opaque", {"a": b"plain"}),
        (
            f"data: {{a: {b64(b'old')}, b: {b64(b'kept')}}}\nstringData: {{a: new}}",
            "Opaque",
            {"a": b"new", "b": b"kept"},
        ),
        (
            f"type: kubernetes.io/tls\ndata: {{tls.crt: {b64(b'C')}, tls.key: {b64(b'K')}}}",
            "kubernetes.io/tls",
            {"tls.crt": b"C", "tls.key": b"K"},
        ),
        ("data: {empty: '', none: null}", "Opaque", {"empty": b"", "none": b""}),
        ('data: {wrapped: "aGVs\\nbG8="}', "Opaque", {"wrapped": b"hello"}),
        ('stringData: {u: "h\\u00e9"}', "Opaque", {"u": "hé".encode()}),
    ],
)
def test_secret_data(body: str, kind: str, data: dict[str, bytes]) -> None:
    secret = model(secret_with(body))
    assert (secret.type, dict(secret.data)) == (kind, data)


def test_secret_with_bad_base64_names_the_key_and_line() -> None:
    text = secret_with("data:\n  good: aGVsbG8=\n  tls.crt: not base64!\n")
    with pytest.raises(ConfigError) as caught:
        model(text)
    error = caught.value
    assert error.message.startswith(
        "data[tls.crt]: Invalid value: illegal base64 data at input byte 3"
    )
    assert str(error.location) == "test.yaml:6"
    assert error.field == "data[tls.crt]"
    assert str(error.resource) == "Secret ns/s"


def test_config_map_binary_data() -> None:
    text = f"""\
apiVersion: v1
kind: ConfigMap
metadata: {{name: c}}
data: {{z: last, a: first}}
binaryData: {{blob: {b64(bytes(range(5)))}}}
"""
    config_map = model(text)
    assert config_map == k8s.ConfigMap(
        "c", "default", {"a": "first", "z": "last"}, {"blob": bytes(range(5))}
    )
    assert list(config_map.data) == ["a", "z"]  # sorted, whatever the input order


def test_config_map_bad_binary_data() -> None:
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\nbinaryData: {blob: abc}\n"
    with pytest.raises(ConfigError, match=r"binaryData\[blob\]: Invalid value: illegal base64"):
        model(text)


# --- Go's base64 rules --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "result"),
    [
        ("", b""),
        ("aGVsbG8=", b"hello"),
        ("aGVsbA==", b"hell"),
        ("aGVs", b"hel"),
        ("aGVs\nbG8=\n", b"hello"),
        ("aGVs\r\nbA=\n=", b"hell"),
        ("aGVsbG8", 4),  # unpadded: Go's standard encoding wants the padding
        ("aGV*bG8=", 3),
        ("aGVsbG8=x", 8),  # garbage after the padding
        ("aGVsbA=", 7),  # only one "=" where two are needed
        ("aGVsbA=x", 6),
        ("=", 0),
        ("a===", 1),
        ("aGVsbG8 ", 7),
        ("héllo", 1),
        ("not base64!", 3),
    ],
)
def test_decode_base64_like_the_api_server(text: str, result: bytes | int) -> None:
    if isinstance(result, bytes):
        assert k8s.decode_base64(text) == result
    else:
        with pytest.raises(ValueError) as caught:
            k8s.decode_base64(text)
        assert str(caught.value) == f"illegal base64 data at input byte {result}"


# --- the dispatcher and the values themselves ---------------------------------------------


def test_from_resource_refuses_other_kinds() -> None:
    info = KindInfo("example.com", ("v1",), "Widget", "widgets", True, top_level("Widget"))
    (document,) = parse_documents("apiVersion: example.com/v1\nkind: Widget\n", "w.yaml")
    resource = Resource(info, "example.com/v1", document.data, document, "ns")
    with pytest.raises(ValueError, match=r"example\.com/Widget has no Kubernetes model"):
        k8s.from_resource(resource)


def test_values_are_frozen() -> None:
    namespace = model(KUBECTL_NAMESPACE)
    with pytest.raises(FrozenInstanceError):
        namespace.name = "other"


def test_cluster_scoped_namespace_ignores_placement() -> None:
    text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: n, labels: {b: '2', a: '1'}}\n"
    namespace = model(text, "elsewhere")
    assert namespace == k8s.Namespace("n", {"a": "1", "b": "2"})
    assert list(namespace.labels) == ["a", "b"]


def test_the_kubernetes_modules_are_pure() -> None:
    """No sockets, files, processes, clocks or environment in the model and its rules."""
    import ast
    import importlib

    allowed = {"__future__", "base64", "binascii", "collections", "dataclasses", "ipaddress"}
    allowed |= {"re", "typing", "meshlet"}
    modules = [
        "meshlet.resources.k8s",
        "meshlet.resources.validation.kubernetes",
        "meshlet.resources.kinds.core_v1",
        "meshlet.resources.kinds.apps_v1",
        "meshlet.resources.kinds.meta",
        "meshlet.resources.kinds.pod",
        "meshlet.resources.kinds.volumes",
    ]
    for name in modules:
        source = importlib.import_module(name).__file__
        assert source is not None
        with open(source, encoding="utf-8") as handle:
            tree = ast.parse(handle.read())
        imported = {
            alias.name.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        } | {
            (node.module or "").split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom)
        }
        assert imported <= allowed, (name, imported - allowed)
