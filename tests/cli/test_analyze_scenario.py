"""The reference scenario's manifests under ``meshlet analyze``: clean with the flag on,
and finding 1 with its fix when the namespace is STRICT without the port-level DISABLE."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshlet.cli.main import main
from tests import manifests

FLAG_ON = ["--set", "values.pilot.env.ENABLE_TLS_ON_SIDECAR_INGRESS=true"]
TYPES_1_TO_4 = {"MSH0001", "MSH0002", "MSH0003", "MSH0004", "MSH0005", "MSH0006"}


@pytest.fixture(autouse=True)
def _no_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESHLET_HOME", str(tmp_path / "no-cluster"))


def _codes(lines: list[str]) -> set[str]:
    return {line.split(" ", 2)[1].strip("[]") for line in lines}


@pytest.mark.parametrize("namespace", [[], ["-n", "test"]], ids=["default", "test"])
def test_no_error_and_no_finding_of_types_1_to_4(
    namespace: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["analyze", *namespace, *FLAG_ON, "-f", str(manifests.EXAMPLE)])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert not any(line.startswith("Error ") for line in out)
    assert not _codes(out) & TYPES_1_TO_4, out


def test_a_namespace_wide_strict_policy_without_the_port_level_disable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    strict = tmp_path / "strict.yaml"
    strict.write_text(manifests.NAMESPACE_STRICT)
    mtls_line = manifests.line_of(manifests.NAMESPACE_STRICT, "  mtls:")
    sidecar = manifests.SIDECAR_PATH
    tls_line = sidecar.read_text().splitlines().index("    tls:") + 1
    code = main(
        [
            "analyze",
            "-n",
            "test",
            *FLAG_ON,
            "-f",
            str(manifests.HTTPBIN_PATH),
            "-f",
            str(sidecar),
            "-f",
            str(strict),
        ]
    )
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out == [
        f"Warning [MSH0001] (Sidecar test/ingress-sidecar {sidecar}:{tls_line}) The tls "
        "settings of ingress port 9080 are ignored for Deployment test/httpbin: the port's "
        "mTLS mode is STRICT, set by the mtls of PeerAuthentication test/default "
        f"({strict}:{mtls_line}), and the sidecar uses its own tls settings only where the mode is "
        "DISABLE. As a result, a client's own TLS handshake meets the mesh certificate and a "
        "demand for a mesh client certificate, and fails. Fix: add a PeerAuthentication in "
        "namespace test with spec: {selector: {matchLabels: {app: httpbin, version: v1}}, "
        "mtls: {mode: STRICT}, portLevelMtls: {9080: {mode: DISABLE}}}."
    ]


def test_the_flag_off_is_a_warning_not_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["analyze", "-n", "test", "-f", str(manifests.EXAMPLE)])
    captured = capsys.readouterr()
    assert code == 0
    assert captured.err == ""
    assert _codes(captured.out.splitlines()) == {"MSH0001"}
