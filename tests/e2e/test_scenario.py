"""The reference scenario end to end: every step through the real ``meshlet`` command,
in a fresh cluster, with the outputs the scenario shows; then its clean-up, leaving
nothing on the machine (checked by ``e2e_cluster``)."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from meshlet.scenario.compare import parse_table
from meshlet.scenario.steps import CLEANUP, SCENARIO, Compare
from tests.e2e.support import e2e_cluster, failed

pytestmark = pytest.mark.integration


def _output(outcomes: list, check: str) -> tuple[str, int]:
    (found,) = [o for o in outcomes if o.command.check == check]
    return found.output, found.exit_code


def _instant(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")


def test_reference_scenario_from_install_to_cleanup(tmp_path: Path) -> None:
    with e2e_cluster(tmp_path) as cluster:
        verdicts = cluster.run_steps(SCENARIO)
        assert failed(verdicts) == [], cluster.transcript() + cluster.daemon_log()
        assert len(verdicts) == 16
        outcomes = cluster.runner.outcomes

        # In the mesh: the client's sidecar answers as Envoy's outbound does.
        in_mesh, code = _output(outcomes, "curl in the mesh, 8080")
        lines = in_mesh.splitlines()
        assert code == 0
        assert lines[0] == "HTTP/1.1 200 OK"
        assert "server: envoy" in lines
        assert any(line.startswith("x-envoy-upstream-service-time: ") for line in lines)
        assert not any(line.startswith("x-envoy-decorator-operation") for line in lines)

        # From outside: HTTP/2 through the sidecar's TLS, the inbound HCM's headers.
        outside, code = _output(outcomes, "curl from outside, 8443")
        lines = [line.rstrip() for line in outside.splitlines()]
        assert code == 0
        assert lines[0] == "HTTP/2 200"
        for header in (
            "server: istio-envoy",
            "x-envoy-decorator-operation: ingress-sidecar.test:9080/*",
            "content-type: text/html; charset=utf-8",
            "access-control-allow-origin: *",
            "access-control-allow-credentials: true",
            "content-length: 0",
        ):
            assert header in lines
        assert any(line.startswith("x-envoy-upstream-service-time: ") for line in lines)

        # From outside on 8080: a reset, exactly as curl and kubectl print it.
        refused, code = _output(outcomes, "curl from outside, 8080")
        assert refused.splitlines() == [
            "curl: (56) Recv failure: Connection reset by peer",
            "command terminated with exit code 56",
        ]
        assert code == 56

        # The secret table: four rows, the serials and validity periods of each.
        table_text, _ = _output(outcomes, "proxy-config secret")
        table = parse_table(table_text)
        rows = {row[0]: dict(zip(table.header, row, strict=True)) for row in table.rows}
        cert = "file-cert:/etc/istio/tls-certs/tls.crt~/etc/istio/tls-certs/tls.key"
        root = "file-root:/etc/istio/tls-ca-certs/ca.crt"
        assert sorted(rows) == sorted([cert, "default", "ROOTCA", root])
        assert {r["STATUS"] for r in rows.values()} == {"ACTIVE"}
        assert {r["VALID CERT"] for r in rows.values()} == {"true"}
        assert rows[cert]["TYPE"] == "Cert Chain" and rows[cert]["SERIAL NUMBER"] == "1"
        assert rows["default"]["TYPE"] == "Cert Chain"
        assert rows["ROOTCA"]["TYPE"] == "CA"
        example_ca = x509.load_pem_x509_certificate(
            (cluster.workdir / "example.com.crt").read_bytes()
        )
        assert rows[root]["SERIAL NUMBER"] == str(example_ca.serial_number)
        assert rows[root]["TYPE"] == "CA"

        def period(name: str) -> timedelta:
            return _instant(rows[name]["NOT AFTER"]) - _instant(rows[name]["NOT BEFORE"])

        assert period("default") == timedelta(hours=24, minutes=2)
        assert period("ROOTCA") == timedelta(days=3650)
        assert period(cert) == period(root) == timedelta(days=365)

        # -o json: Envoy's secrets config dump, camelCase, private keys redacted.
        pod = cluster.pod("test", "app=httpbin")
        dumped = cluster.meshlet("proxy-config", "secret", f"{pod}.test", "-o", "json")
        assert dumped.returncode == 0, dumped.stderr
        dump = json.loads(dumped.stdout)
        active = {s["name"]: s for s in dump["dynamicActiveSecrets"]}
        assert sorted(active) == sorted(rows)
        for name in (cert, "default"):
            tls = active[name]["secret"]["tlsCertificate"]
            chain = base64.b64decode(tls["certificateChain"]["inlineBytes"])
            assert chain.startswith(b"-----BEGIN CERTIFICATE-----")
            assert base64.b64decode(tls["privateKey"]["inlineBytes"]) == b"[redacted]"
        served = x509.load_pem_x509_certificate(
            base64.b64decode(
                active[cert]["secret"]["tlsCertificate"]["certificateChain"]["inlineBytes"]
            )
        )
        assert served.serial_number == 1
        for name in ("ROOTCA", root):
            trusted = active[name]["secret"]["validationContext"]["trustedCa"]["inlineBytes"]
            assert base64.b64decode(trusted).startswith(b"-----BEGIN CERTIFICATE-----")
        assert "private_key" not in dumped.stdout and "BEGIN PRIVATE KEY" not in dumped.stdout

        # The tables, compared cell by cell by the verdicts, once more by hand.
        pods_test, _ = _output(outcomes, "get pods -n test")
        ready = {row[0].split("-")[0]: row[1:4] for row in parse_table(pods_test).rows}
        assert ready == {"httpbin": ("2/2", "Running", "0"), "sleep": ("2/2", "Running", "0")}
        services, _ = _output(outcomes, "get svc -n test")
        ports = {row[0]: row[4] for row in parse_table(services).rows}
        assert ports == {"httpbin": "8443/TCP,8080/TCP", "sleep": "80/TCP"}

        # Step 11: everything goes; e2e_cluster checks the machine is clean.
        cleanup = cluster.run_steps((CLEANUP,))
        assert failed(cleanup) == [], cluster.transcript()
        assert not cluster.home.exists()
        assert not list(cluster.workdir.glob("*.crt")) and not list(cluster.workdir.glob("*.key"))
        assert all(c.compare is Compare.NONE for c in CLEANUP.commands)
