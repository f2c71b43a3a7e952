"""Each finding of ``meshlet analyze`` fires on one fixture and stays quiet on a
near-identical one (one line, one document or one setting apart)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from meshlet.resources.validation import Level
from tests.analyzers import fixtures as f
from tests.analyzers.support import of, run


@dataclass(frozen=True)
class Case:
    id: str
    code: str
    fires: str
    quiet: str
    level: Level
    fires_flag: bool = True
    quiet_flag: bool = True
    fires_live: str | None = None
    quiet_live: str | None = None


def _swap(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


BROKEN_JSON = _swap(f.DEPLOYMENT, '{"tls-secret":{"secret":', '{"tls-secret":{"secret"')
UNDECLARED_MOUNT = _swap(
    f.DEPLOYMENT, '"tls-ca-secret":{"mountPath"', '"tls-ca-certs":{"mountPath"'
)
WRONG_MOUNT = _swap(
    f.DEPLOYMENT, '"mountPath":"/etc/istio/tls-certs/"', '"mountPath":"/etc/certs/"'
)
NO_TLS_SIDECAR = _swap(
    f.SIDECAR,
    "    tls:\n"
    "      mode: MUTUAL\n"
    '      privateKey: "/etc/istio/tls-certs/tls.key"\n'
    '      serverCertificate: "/etc/istio/tls-certs/tls.crt"\n'
    '      caCertificates: "/etc/istio/tls-ca-certs/ca.crt"\n',
    "",
)
OTHER_SIDECAR = _swap(f.SIDECAR, "name: ingress-sidecar", "name: other-sidecar")
PLAIN_SIDECAR = """\
apiVersion: networking.istio.io/v1alpha3
kind: Sidecar
metadata:
  name: {name}
spec:
  egress:
  - hosts: ["./*"]
"""

CASES = [
    Case(
        "flag-off",
        "MSH0001",
        f.SCENARIO,
        f.SCENARIO,
        Level.WARNING,
        fires_flag=False,
        quiet_flag=True,
    ),
    Case(
        "namespace-strict-without-port-level-disable",
        "MSH0001",
        f.join(f.DEPLOYMENT, f.SERVICE, f.SIDECAR, f.NAMESPACE_STRICT),
        f.SCENARIO,
        Level.WARNING,
    ),
    Case(
        "port-level-strict",
        "MSH0001",
        _swap(f.SCENARIO, "    9080:\n      mode: DISABLE", "    9080:\n      mode: STRICT"),
        f.SCENARIO,
        Level.WARNING,
    ),
    Case(
        "port-level-keyed-by-service-port",
        "MSH0002",
        _swap(f.SCENARIO, "    9080:\n      mode: DISABLE", "    8443:\n      mode: DISABLE"),
        f.SCENARIO,
        Level.WARNING,
    ),
    Case(
        "tls-file-not-mounted",
        "MSH0003",
        f.join(WRONG_MOUNT, f.SERVICE, f.SIDECAR, f.NAMESPACE_STRICT, f.PORT_DISABLE),
        f.SCENARIO,
        Level.WARNING,
    ),
    Case(
        "user-volume-secret-missing-in-files",
        "MSH0004",
        f.join(f.SCENARIO, _swap(f.SECRETS, "name: httpbin-mtls-termination-cacert", "name: ca")),
        f.join(f.SCENARIO, f.SECRETS),
        Level.WARNING,
    ),
    Case(
        "user-volume-secret-missing-in-the-cluster",
        "MSH0004",
        f.SCENARIO,
        f.SCENARIO,
        Level.ERROR,
        fires_live=_swap(f.SECRETS, "name: httpbin-mtls-termination-cacert", "name: ca"),
        quiet_live=f.SECRETS,
    ),
    Case(
        "user-volume-not-json",
        "MSH0005",
        f.join(BROKEN_JSON, f.SERVICE, f.SIDECAR, f.NAMESPACE_STRICT, f.PORT_DISABLE),
        f.SCENARIO,
        Level.ERROR,
    ),
    Case(
        "user-volume-mount-undeclared",
        "MSH0006",
        f.join(UNDECLARED_MOUNT, f.SERVICE, f.SIDECAR, f.NAMESPACE_STRICT, f.PORT_DISABLE),
        f.SCENARIO,
        Level.ERROR,
    ),
    Case(
        "sidecar-selects-nothing",
        "IST0127",
        f.join(
            f.DEPLOYMENT,
            f.SERVICE,
            _swap(f.SIDECAR, "version: v1", "version: v2"),
            f.NAMESPACE_STRICT,
            f.PORT_DISABLE,
        ),
        f.SCENARIO,
        Level.WARNING,
    ),
    Case(
        "peer-authentication-selects-nothing",
        "IST0127",
        _swap(f.SCENARIO, "      app: httpbin\n  mtls:", "      app: httpbin-v2\n  mtls:"),
        f.SCENARIO,
        Level.WARNING,
    ),
    Case(
        "service-selects-no-pods",
        "MSH0007",
        _swap(f.SCENARIO, "  selector:\n    app: httpbin\n", "  selector:\n    app: http-bin\n"),
        f.SCENARIO,
        Level.WARNING,
    ),
    Case(
        "service-without-selector",
        "MSH0008",
        _swap(f.SCENARIO, "  selector:\n    app: httpbin\n", ""),
        f.SCENARIO,
        Level.WARNING,
    ),
    Case(
        "policy-on-uninjected-namespace",
        "MSH0009",
        f.join(_swap(f.NAMESPACE, "    istio-injection: enabled\n", "    team: web\n"), f.SCENARIO),
        f.join(f.NAMESPACE, f.SCENARIO),
        Level.WARNING,
    ),
    Case(
        "namespace-not-injected",
        "IST0102",
        f.join(_swap(f.NAMESPACE, "    istio-injection: enabled\n", "    team: web\n"), f.SCENARIO),
        f.join(f.NAMESPACE, f.SCENARIO),
        Level.INFO,
    ),
    Case(
        "port-name-convention",
        "IST0118",
        _swap(f.SCENARIO, "    name: http\n", "    name: web\n"),
        f.SCENARIO,
        Level.INFO,
    ),
    Case(
        "https-port-without-tls-and-mode-disable",
        "MSH0010",
        f.join(f.DEPLOYMENT, f.SERVICE, NO_TLS_SIDECAR, f.NAMESPACE_STRICT, f.PORT_DISABLE),
        f.SCENARIO,
        Level.WARNING,
    ),
    Case(
        "sidecars-select-the-same-workload",
        "IST0110",
        f.join(f.SCENARIO, OTHER_SIDECAR),
        f.join(f.SCENARIO, _swap(OTHER_SIDECAR, "version: v1", "version: v2")),
        Level.ERROR,
    ),
    Case(
        "sidecars-without-selectors",
        "IST0111",
        f.join(f.SCENARIO, PLAIN_SIDECAR.format(name="a"), PLAIN_SIDECAR.format(name="b")),
        f.join(
            f.SCENARIO,
            PLAIN_SIDECAR.format(name="a"),
            _swap(
                PLAIN_SIDECAR.format(name="b"),
                "spec:\n",
                "spec:\n  workloadSelector:\n    labels:\n      app: httpbin\n",
            ),
        ),
        Level.ERROR,
    ),
]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_the_finding_fires(case: Case) -> None:
    found = of(run(case.fires, flag=case.fires_flag, live=case.fires_live), case.code)
    assert found, f"{case.code} did not fire"
    assert {m.level for m in found} == {case.level}


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_the_near_identical_fixture_is_quiet(case: Case) -> None:
    messages = run(case.quiet, flag=case.quiet_flag, live=case.quiet_live)
    assert of(messages, case.code) == [], "\n".join(map(str, messages))


def test_the_scenario_alone_has_no_finding_at_all() -> None:
    assert run(f.SCENARIO) == []
