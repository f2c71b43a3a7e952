"""``meshlet sidecar -f``: bad input is one line naming the file and line, exit 1."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from meshlet.cli.main import main

SIDECAR = """\
apiVersion: networking.istio.io/v1alpha3
kind: Sidecar
metadata:
  name: ingress-sidecar
  namespace: test
spec:
  ingress:
  - port:
      number: 9080
      protocol: HTTPS
      name: external
    bind: 127.0.0.1
    defaultEndpoint: 0.0.0.0:8080
    tls:
      mode: {mode}
      privateKey: /certs/tls.key
      serverCertificate: /certs/tls.crt
      caCertificates: /certs/ca.crt
"""

STRICT = """\
---
apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata:
  name: strict
  namespace: test
spec:
  mtls:
    mode: STRICT
"""


def _run(
    tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str], *extra: str
) -> tuple[int, list[str]]:
    path = tmp_path / "sidecar.yaml"
    path.write_text(text)
    code = main(["sidecar", "-f", str(path), *extra])
    return code, capsys.readouterr().err.splitlines()


def test_istio_validation_error_is_one_line_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines = _run(tmp_path, SIDECAR.format(mode="ISTIO_MUTUAL"), capsys)
    assert code == 1
    assert lines == [
        f"error: {tmp_path}/sidecar.yaml:15 Sidecar test/ingress-sidecar: configuration is "
        "invalid: cannot set mode to ISTIO_MUTUAL in sidecar ingress tls"
    ]


def test_mesh_mtls_without_identity_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines = _run(tmp_path, SIDECAR.format(mode="MUTUAL") + STRICT, capsys)
    assert code == 1
    assert len(lines) == 1
    assert lines[0].startswith(
        f"error: {tmp_path}/sidecar.yaml:27 PeerAuthentication test/strict: mTLS mode STRICT "
        "needs a mesh identity"
    )


def test_broken_yaml_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = _run(tmp_path, "kind: Sidecar\n  bad: [\n", capsys)
    assert code == 1
    assert len(lines) == 1
    assert lines[0].startswith(f"error: {tmp_path}/sidecar.yaml:")


def test_missing_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["sidecar", "-f", str(tmp_path / "nothing.yaml")])
    assert code == 1
    assert capsys.readouterr().err.splitlines() == [
        f'error: the path "{tmp_path}/nothing.yaml" does not exist'
    ]


@pytest.mark.integration
def test_an_admin_port_in_use_is_a_clean_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, lines = _run(
            tmp_path, SIDECAR.format(mode="MUTUAL"), capsys, "--admin-port", str(port),
            "--status-port", "0", "--prometheus-port", "0",
        )  # fmt: skip
    assert code == 1
    assert lines == [
        f"error: cannot listen on 127.0.0.1:{port} for the admin port: Address already in use"
    ]
