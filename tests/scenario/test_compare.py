"""The normaliser masks only what changes between runs: real outputs PASS, and a
deliberately wrong output FAILs with a one-line reason naming the difference."""

from __future__ import annotations

import pytest

from meshlet.scenario.compare import compare_output, normalise_lines, parse_table
from meshlet.scenario.steps import SCENARIO, Command, steps_with_outputs
from tests.scenario import outputs

CHECKS = {c.check: c for c in steps_with_outputs(SCENARIO)}
REAL = {
    "get pods": (outputs.PODS_DEFAULT, 0),
    "get pods -n test": (outputs.PODS_TEST, 0),
    "get svc -n test": (outputs.SERVICES_TEST, 0),
    "proxy-config secret": (outputs.SECRETS, 0),
    "curl in the mesh, 8080": (outputs.IN_MESH, 0),
    "curl from outside, 8443": (outputs.FROM_OUTSIDE, 0),
    "curl from outside, 8080": (outputs.REFUSED, 56),
}


def verdict(check: str, output: str, exit_code: int = 0) -> tuple[bool, str]:
    result = compare_output(CHECKS[check], output, exit_code)
    assert result.check == check and "\n" not in result.reason
    return result.passed, result.reason


def test_every_compared_command_has_a_real_output_here() -> None:
    assert sorted(CHECKS) == sorted(REAL)


@pytest.mark.parametrize("check", sorted(REAL))
def test_a_real_run_passes(check: str) -> None:
    output, code = REAL[check]
    assert verdict(check, output, code) == (True, verdict(check, output, code)[1])
    assert verdict(check, output, code)[0]


def test_the_scenarios_own_outputs_pass_against_themselves() -> None:
    for command in CHECKS.values():
        assert compare_output(command, command.expected, command.exit_code).passed


# --- HTTP responses -------------------------------------------------------------------


def test_envoy_where_istio_envoy_is_expected_fails() -> None:
    wrong = outputs.FROM_OUTSIDE.replace("server: istio-envoy", "server: envoy")
    assert verdict("curl from outside, 8443", wrong) == (
        False,
        'line 2: expected "server: istio-envoy", got "server: envoy"',
    )


def test_a_missing_header_fails() -> None:
    wrong = outputs.FROM_OUTSIDE.replace(
        "x-envoy-decorator-operation: ingress-sidecar.test:9080/*\r\n", ""
    )
    assert verdict("curl from outside, 8443", wrong) == (
        False,
        'missing line 9: "x-envoy-decorator-operation: ingress-sidecar.test:9080/*"',
    )
    no_time = outputs.IN_MESH.replace("x-envoy-upstream-service-time: 26\r\n", "")
    passed, reason = verdict("curl in the mesh, 8080", no_time)
    assert not passed and "x-envoy-upstream-service-time: <ms>" in reason


def test_an_extra_header_fails() -> None:
    wrong = outputs.IN_MESH.replace("server: envoy\r\n", "server: envoy\r\nx-powered-by: me\r\n")
    assert verdict("curl in the mesh, 8080", wrong) == (
        False,
        'unexpected line 3: "x-powered-by: me"',
    )


def test_http_1_1_where_http_2_is_expected_fails() -> None:
    wrong = outputs.FROM_OUTSIDE.replace("HTTP/2 200 ", "HTTP/1.1 200 OK")
    assert verdict("curl from outside, 8443", wrong) == (
        False,
        'line 1: expected "HTTP/2 200", got "HTTP/1.1 200 OK"',
    )


def test_a_header_value_that_differs_fails() -> None:
    wrong = outputs.FROM_OUTSIDE.replace("ingress-sidecar.test:9080/*", "ingress-sidecar:9080/*")
    assert not verdict("curl from outside, 8443", wrong)[0]
    assert not verdict("curl in the mesh, 8080", outputs.IN_MESH.replace(" 200 OK", " 503 OK"))[0]


def test_exit_52_instead_of_56_fails() -> None:
    empty_reply = "curl: (52) Empty reply from server\ncommand terminated with exit code 52\n"
    assert verdict("curl from outside, 8080", empty_reply, 52) == (
        False,
        'line 1: expected "curl: (56) Recv failure: Connection reset by peer", '
        'got "curl: (52) Empty reply from server"',
    )
    # the right lines with the wrong exit code fail too
    assert verdict("curl from outside, 8080", outputs.REFUSED, 52) == (
        False,
        "exit code 52, expected 56",
    )
    only_curl = "curl: (56) Recv failure: Connection reset by peer\n"
    assert verdict("curl from outside, 8080", only_curl, 56)[1] == (
        'missing line 2: "command terminated with exit code 56"'
    )


def test_only_dates_and_milliseconds_are_masked_in_responses() -> None:
    assert normalise_lines("date: Mon, 24 Oct 2022 09:04:52 GMT\r\n") == ["date: <date>"]
    assert normalise_lines("x-envoy-upstream-service-time: 5") == [
        "x-envoy-upstream-service-time: <ms>"
    ]
    # not a date, not a number: left as they are, so they cannot match
    assert normalise_lines("date: yesterday") == ["date: yesterday"]
    assert normalise_lines("x-envoy-upstream-service-time: 5ms") == [
        "x-envoy-upstream-service-time: 5ms"
    ]
    assert normalise_lines("content-length: 0") == ["content-length: 0"]


# --- tables ---------------------------------------------------------------------------


def test_a_pod_not_ready_fails() -> None:
    wrong = outputs.PODS_TEST.replace(
        "2/2     Running   0          3s", "1/2     Running   0          3s"
    )
    assert verdict("get pods -n test", wrong) == (
        False,
        'row httpbin-<hash>: READY is "1/2", expected "2/2"',
    )


def test_a_restart_or_a_missing_pod_fails() -> None:
    restarted = outputs.PODS_DEFAULT.replace("Running   0 ", "Running   1 ")
    assert verdict("get pods", restarted) == (
        False,
        'row sleep-<hash>: RESTARTS is "1", expected "0"',
    )
    header_only = outputs.PODS_TEST.splitlines()[0] + "\n" + outputs.PODS_TEST.splitlines()[1]
    passed, reason = verdict("get pods -n test", header_only)
    assert not passed and reason.startswith("1 rows (httpbin-<hash>), expected 2")
    assert verdict("get pods", "No resources found in default namespace.\n")[0] is False


def test_a_wrong_header_or_layout_fails() -> None:
    renamed = outputs.SERVICES_TEST.replace("CLUSTER-IP", "CLUSTER_IP")
    passed, reason = verdict("get svc -n test", renamed)
    assert not passed and reason.startswith("header ")
    # two spaces between columns where kubectl prints three
    squeezed = (
        "NAME     TYPE       CLUSTER-IP  EXTERNAL-IP  PORT(S)            AGE\n"
        "httpbin  ClusterIP  10.96.0.3   <none>       8443/TCP,8080/TCP  4s\n"
        "sleep    ClusterIP  10.96.0.5   <none>       80/TCP             3s\n"
    )
    assert verdict("get svc -n test", squeezed) == (False, "columns 2 spaces apart, expected 3")
    shifted = outputs.SERVICES_TEST.replace("sleep     ClusterIP", "sleep      ClusterIP")
    passed, reason = verdict("get svc -n test", shifted)
    assert not passed and reason.startswith("cells out of their columns")


def test_ports_of_a_service_are_not_masked() -> None:
    wrong = outputs.SERVICES_TEST.replace("8443/TCP,8080/TCP", "8080/TCP,8443/TCP")
    assert verdict("get svc -n test", wrong) == (
        False,
        'row httpbin: PORT(S) is "8080/TCP,8443/TCP", expected "8443/TCP,8080/TCP"',
    )
    assert not verdict(
        "get svc -n test", outputs.SERVICES_TEST.replace("ClusterIP", "NodePort", 1)
    )[0]


def test_secret_rows_may_come_in_any_order_but_all_must_be_there() -> None:
    lines = outputs.SECRETS.splitlines()
    reordered = "\n".join([lines[0], *reversed(lines[1:])])
    assert verdict("proxy-config secret", reordered)[0]
    without_root = "\n".join(line for line in lines if not line.startswith("file-root"))
    assert verdict("proxy-config secret", without_root) == (
        False,
        "missing row file-root:/etc/istio/tls-ca-certs/ca.crt",
    )


def test_a_wrong_serial_type_or_period_fails() -> None:
    cert_row = "file-cert:/etc/istio/tls-certs/tls.crt~/etc/istio/tls-certs/tls.key     Cert Chain     ACTIVE     true           1    "
    wrong_serial = outputs.SECRETS.replace(
        cert_row, cert_row.replace("true           1 ", "true           2 ")
    )
    assert verdict("proxy-config secret", wrong_serial)[1] == (
        "row file-cert:/etc/istio/tls-certs/tls.crt~/etc/istio/tls-certs/tls.key: "
        'SERIAL NUMBER is "2", expected "1"'
    )
    as_chain = outputs.SECRETS.replace(
        "ROOTCA                                                                  CA          ",
        "ROOTCA                                                                  Cert Chain  ",
    )
    assert (
        verdict("proxy-config secret", as_chain)[1]
        == 'row ROOTCA: TYPE is "Cert Chain", expected "CA"'
    )
    # a root backdated by two minutes is valid for 3650 days and 2 minutes: not Istio's
    backdated = outputs.SECRETS.replace("2026-11-29T16:34:15Z", "2026-11-29T16:32:15Z")
    assert verdict("proxy-config secret", backdated)[1] == (
        'row ROOTCA: VALID FOR is "3650 days, 0:02:00", expected "3650 days, 0:00:00"'
    )
    invalid = outputs.SECRETS.replace(
        "ACTIVE     true           1 ", "ACTIVE     false          1 "
    )
    assert not verdict("proxy-config secret", invalid)[0]


def test_tables_are_cut_into_cells_on_two_spaces() -> None:
    table = parse_table(outputs.SECRETS)
    assert table.header[:4] == ("RESOURCE NAME", "TYPE", "STATUS", "VALID CERT")
    assert table.rows[1][:2] == ("default", "Cert Chain")
    assert table.gap == 5
    assert parse_table(outputs.PODS_TEST).gap == 3


def test_a_command_that_only_has_to_succeed() -> None:
    command = Command("meshlet create ns test")
    assert compare_output(command, "namespace/test created\n", 0).passed
    assert compare_output(command, "Error from server (AlreadyExists)\n", 1).reason == (
        "exit code 1, expected 0"
    )
