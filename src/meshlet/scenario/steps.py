"""The reference scenario as data: its steps, their commands and the outputs it shows.

Each ``Command`` is one shell command exactly as a user types it (a heredoc included),
with the output the scenario shows for it, if any, and how to compare that output
(``Compare``). ``Command.extra`` marks the commands meshlet adds to the walk-through
where a user would add them too — waiting for the pods to be Ready before listing
them — they are shown and must succeed, but they have no output to compare.

The expected outputs are the scenario's own, with one documented difference: the
example CA made in step 3 by OpenSSL (1.1.1 and 3) carries ``CA:TRUE``, so its
``file-root`` row's TYPE is ``CA`` where the scenario's older output shows
``Cert Chain``.

Pure: values only.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "CLEANUP",
    "SCENARIO",
    "Command",
    "Compare",
    "Step",
    "steps_with_outputs",
]


class Compare(enum.Enum):
    """How a command's output is compared with the scenario's."""

    NONE = "none"  # no output shown: the command must only succeed
    LINES = "lines"  # line by line, in order (curl's headers, error lines)
    TABLE = "table"  # a kubectl table: rows in order, cells aligned
    TABLE_ROWS = "table-rows"  # an istioctl table whose rows may come in any order


@dataclass(frozen=True, slots=True)
class Command:
    """One command of the scenario and what it must print."""

    text: str
    expected: str = ""
    compare: Compare = Compare.NONE
    exit_code: int = 0
    check: str = ""  # the name of the check in the verdicts
    extra: bool = False  # added by meshlet's walk-through (a wait), not in the scenario
    # A pod name the scenario prints literally (its run's name), the pod's namespace and
    # a label selector that finds this run's pod: the runner puts the real name in.
    pod_name: tuple[str, str, str] | None = None

    def __post_init__(self) -> None:
        if (self.compare is Compare.NONE) != (not self.expected):
            raise ValueError(f"{self.text!r}: an expected output needs a comparison and back")
        if self.expected and not self.check:
            raise ValueError(f"{self.text!r}: a compared output needs a check name")


@dataclass(frozen=True, slots=True)
class Step:
    """A numbered step of the scenario."""

    number: int
    title: str
    commands: tuple[Command, ...]


_PEER_AUTH_DEFAULT = """\
meshlet -n test apply -f - <<EOF
apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata:
  name: default
spec:
  mtls:
    mode: STRICT
EOF"""

_PEER_AUTH_PORT = """\
meshlet -n test apply -f - <<EOF
apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata:
  name: disable-peer-auth-for-external-mtls-port
  namespace: test
spec:
  selector:
    matchLabels:
      app: httpbin
  mtls:
    mode: STRICT
  portLevelMtls:
    9080:
      mode: DISABLE
EOF"""

_CERTIFICATES = (
    "openssl req -x509 -sha256 -nodes -days 365 -newkey rsa:2048 -subj '/O=example Inc./CN=example.com' -keyout example.com.key -out example.com.crt",
    'openssl req -out httpbin.test.svc.cluster.local.csr -newkey rsa:2048 -nodes -keyout httpbin.test.svc.cluster.local.key -subj "/CN=httpbin.test.svc.cluster.local/O=httpbin organization"',
    "openssl x509 -req -days 365 -CA example.com.crt -CAkey example.com.key -set_serial 1 -in httpbin.test.svc.cluster.local.csr -out httpbin.test.svc.cluster.local.crt",
    'openssl req -out client.test.svc.cluster.local.csr -newkey rsa:2048 -nodes -keyout client.test.svc.cluster.local.key -subj "/CN=client.test.svc.cluster.local/O=client organization"',
    "openssl x509 -req -days 365 -CA example.com.crt -CAkey example.com.key -set_serial 1 -in client.test.svc.cluster.local.csr -out client.test.svc.cluster.local.crt",
)

_SECRETS = (
    "meshlet -n test create secret generic httpbin-mtls-termination-cacert --from-file=ca.crt=./example.com.crt",
    "meshlet -n test create secret tls httpbin-mtls-termination --cert ./httpbin.test.svc.cluster.local.crt --key ./httpbin.test.svc.cluster.local.key",
)

_HTTPBIN = """\
meshlet -n test apply -f - <<EOF
apiVersion: v1
kind: ServiceAccount
metadata:
  name: httpbin
---
apiVersion: v1
kind: Service
metadata:
  name: httpbin
  labels:
    app: httpbin
    service: httpbin
spec:
  ports:
  - port: 8443
    name: https
    targetPort: 9080
  - port: 8080
    name: http
    targetPort: 9081
  selector:
    app: httpbin
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: httpbin
spec:
  replicas: 1
  selector:
    matchLabels:
      app: httpbin
      version: v1
  template:
    metadata:
      labels:
        app: httpbin
        version: v1
      annotations:
        sidecar.istio.io/userVolume: '{"tls-secret":{"secret":{"secretName":"httpbin-mtls-termination","optional":true}},"tls-ca-secret":{"secret":{"secretName":"httpbin-mtls-termination-cacert"}}}'
        sidecar.istio.io/userVolumeMount: '{"tls-secret":{"mountPath":"/etc/istio/tls-certs/","readOnly":true},"tls-ca-secret":{"mountPath":"/etc/istio/tls-ca-certs/","readOnly":true}}'
    spec:
      serviceAccountName: httpbin
      containers:
      - image: docker.io/kennethreitz/httpbin
        imagePullPolicy: IfNotPresent
        name: httpbin
        ports:
        - containerPort: 80
EOF"""

_SIDECAR = """\
meshlet -n test apply -f - <<EOF
apiVersion: networking.istio.io/v1alpha3
kind: Sidecar
metadata:
  name: ingress-sidecar
  namespace: test
spec:
  workloadSelector:
    labels:
      app: httpbin
      version: v1
  ingress:
  - port:
      number: 9080
      protocol: HTTPS
      name: external
    defaultEndpoint: 0.0.0.0:80
    tls:
      mode: MUTUAL
      privateKey: "/etc/istio/tls-certs/tls.key"
      serverCertificate: "/etc/istio/tls-certs/tls.crt"
      caCertificates: "/etc/istio/tls-ca-certs/ca.crt"
  - port:
      number: 9081
      protocol: HTTP
      name: internal
    defaultEndpoint: 0.0.0.0:80
EOF"""

_PODS_DEFAULT = """\
NAME                     READY   STATUS    RESTARTS   AGE
sleep-557747455f-xx88g   1/1     Running   0          4m14s"""

_PODS_TEST = """\
NAME                       READY   STATUS    RESTARTS   AGE
httpbin-5bbdbd6588-z9vbs   2/2     Running   0          8m44s
sleep-557747455f-brzf6     2/2     Running   0          6m57s"""

_SERVICES_TEST = """\
NAME      TYPE        CLUSTER-IP      EXTERNAL-IP   PORT(S)             AGE
httpbin   ClusterIP   10.100.78.113   <none>        8443/TCP,8080/TCP   10m
sleep     ClusterIP   10.110.35.153   <none>        80/TCP              8m49s"""

_SECRET_TABLE = """\
RESOURCE NAME                                                           TYPE           STATUS     VALID CERT     SERIAL NUMBER                               NOT AFTER                NOT BEFORE
file-cert:/etc/istio/tls-certs/tls.crt~/etc/istio/tls-certs/tls.key     Cert Chain     ACTIVE     true           1                                           2023-02-14T09:51:56Z     2022-02-14T09:51:56Z
default                                                                 Cert Chain     ACTIVE     true           329492464719328863283539045344215802956     2022-02-15T09:55:46Z     2022-02-14T09:53:46Z
ROOTCA                                                                  CA             ACTIVE     true           204427760222438623495455009380743891800     2032-02-07T16:58:00Z     2022-02-09T16:58:00Z
file-root:/etc/istio/tls-ca-certs/ca.crt                                CA             ACTIVE     true           14033888812979945197                        2023-02-14T09:51:56Z     2022-02-14T09:51:56Z"""

_IN_MESH = """\
HTTP/1.1 200 OK
server: envoy
date: Mon, 24 Oct 2022 09:04:52 GMT
content-type: text/html; charset=utf-8
access-control-allow-origin: *
access-control-allow-credentials: true
content-length: 0
x-envoy-upstream-service-time: 5"""

_FROM_OUTSIDE = """\
HTTP/2 200
server: istio-envoy
date: Mon, 24 Oct 2022 09:05:31 GMT
content-type: text/html; charset=utf-8
access-control-allow-origin: *
access-control-allow-credentials: true
content-length: 0
x-envoy-upstream-service-time: 4
x-envoy-decorator-operation: ingress-sidecar.test:9080/*"""

_REFUSED = """\
curl: (56) Recv failure: Connection reset by peer
command terminated with exit code 56"""

_CURL_CLIENT_CERT = (
    "--cacert /tmp/ca.crt --key /tmp/client.test.svc.cluster.local.key "
    "--cert /tmp/client.test.svc.cluster.local.crt -HHost:httpbin.test.svc.cluster.local"
)

SCENARIO: tuple[Step, ...] = (
    Step(
        1,
        "Install with the experimental flag, make a namespace with injection",
        (
            Command(
                "meshlet install --set profile=default --set values.pilot.env.ENABLE_TLS_ON_SIDECAR_INGRESS=true"
            ),
            Command("meshlet create ns test"),
            Command("meshlet label namespace test istio-injection=enabled"),
        ),
    ),
    Step(
        2,
        "Mesh mTLS, and the port that external clients will use",
        (Command(_PEER_AUTH_DEFAULT), Command(_PEER_AUTH_PORT)),
    ),
    Step(3, "Certificates", tuple(Command(text) for text in _CERTIFICATES)),
    Step(4, "Secrets", tuple(Command(text) for text in _SECRETS)),
    Step(5, "httpbin, with the secrets mounted into the sidecar", (Command(_HTTPBIN),)),
    Step(6, "The Sidecar resource: TLS on the ingress listener", (Command(_SIDECAR),)),
    Step(
        7,
        "Clients, and a look at what runs",
        (
            Command("meshlet apply -f samples/sleep/sleep.yaml"),
            Command("meshlet -n test apply -f samples/sleep/sleep.yaml"),
            Command("meshlet wait --for=condition=Ready pod --all --timeout=60s", extra=True),
            Command(
                "meshlet -n test wait --for=condition=Ready pod --all --timeout=60s", extra=True
            ),
            Command("meshlet get pods", _PODS_DEFAULT, Compare.TABLE, check="get pods"),
            Command(
                "meshlet get pods -n test", _PODS_TEST, Compare.TABLE, check="get pods -n test"
            ),
            Command(
                "meshlet get svc -n test", _SERVICES_TEST, Compare.TABLE, check="get svc -n test"
            ),
            Command(
                "meshlet proxy-config secret httpbin-5bbdbd6588-z9vbs.test",
                _SECRET_TABLE,
                Compare.TABLE_ROWS,
                check="proxy-config secret",
                pod_name=("httpbin-5bbdbd6588-z9vbs", "test", "app=httpbin"),
            ),
        ),
    ),
    Step(
        8,
        "In the mesh: port 8080, mesh mTLS between the two sidecars",
        (
            Command(
                "export INTERNAL_CLIENT=$(meshlet -n test get pod -l app=sleep -o jsonpath={.items..metadata.name})"
            ),
            Command(
                'meshlet -n test exec "${INTERNAL_CLIENT}" -c sleep -- curl -IsS "http://httpbin:8080/status/200"',
                _IN_MESH,
                Compare.LINES,
                check="curl in the mesh, 8080",
            ),
        ),
    ),
    Step(
        9,
        "From outside: port 8443, the client's own mutual TLS, terminated by the sidecar",
        (
            Command(
                "export EXTERNAL_CLIENT=$(meshlet get pod -l app=sleep -o jsonpath={.items..metadata.name})"
            ),
            Command(
                'meshlet cp client.test.svc.cluster.local.key default/"${EXTERNAL_CLIENT}":/tmp/'
            ),
            Command(
                'meshlet cp client.test.svc.cluster.local.crt default/"${EXTERNAL_CLIENT}":/tmp/'
            ),
            Command('meshlet cp example.com.crt default/"${EXTERNAL_CLIENT}":/tmp/ca.crt'),
            Command(
                f'meshlet exec "${{EXTERNAL_CLIENT}}" -c sleep -- curl -IsS {_CURL_CLIENT_CERT} '
                '"https://httpbin.test.svc.cluster.local:8443/status/200"',
                _FROM_OUTSIDE,
                Compare.LINES,
                check="curl from outside, 8443",
            ),
        ),
    ),
    Step(
        10,
        "From outside, port 8080 must refuse: it is mesh-only",
        (
            Command(
                f'meshlet exec "${{EXTERNAL_CLIENT}}" -c sleep -- curl -IsS {_CURL_CLIENT_CERT} '
                '"http://httpbin.test.svc.cluster.local:8080/status/200"',
                _REFUSED,
                Compare.LINES,
                exit_code=56,
                check="curl from outside, 8080",
            ),
        ),
    ),
)

CLEANUP = Step(
    11,
    "Clean up",
    (
        Command(
            "meshlet delete secret httpbin-mtls-termination httpbin-mtls-termination-cacert -n test"
        ),
        Command("meshlet delete service httpbin sleep -n test"),
        Command("meshlet delete deployment httpbin sleep -n test"),
        Command("meshlet delete namespace test"),
        Command("meshlet delete service sleep"),
        Command("meshlet delete deployment sleep"),
        Command(
            "rm example.com.crt example.com.key httpbin.test.svc.cluster.local.crt httpbin.test.svc.cluster.local.key httpbin.test.svc.cluster.local.csr \\\n"
            "    client.test.svc.cluster.local.crt client.test.svc.cluster.local.key client.test.svc.cluster.local.csr"
        ),
        Command("meshlet uninstall --purge -y"),
    ),
)


def steps_with_outputs(steps: tuple[Step, ...] = SCENARIO) -> tuple[Command, ...]:
    """The commands whose output is compared, in the scenario's order."""
    return tuple(c for step in steps for c in step.commands if c.compare is not Compare.NONE)
