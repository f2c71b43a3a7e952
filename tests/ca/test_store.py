from __future__ import annotations

import os
import stat
from datetime import timedelta
from pathlib import Path

import pytest

from meshlet.ca.signing import Signer
from meshlet.ca.store import TOKEN_KEY_FILE, CAStore
from meshlet.errors import CertificateError

from .conftest import NOW, make_intermediate


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def ca_dir(tmp_path: Path) -> Path:
    return tmp_path / "var" / "ca"


def test_root_is_made_once_and_kept(ca_dir: Path) -> None:
    first = CAStore(ca_dir, trust_domain="example.org").load_signer(now=NOW)
    assert mode(ca_dir) == 0o700
    assert mode(ca_dir / "ca-key.pem") == 0o600
    assert sorted(p.name for p in ca_dir.iterdir()) == [
        "ca-cert.pem",
        "ca-key.pem",
        "cert-chain.pem",
        "root-cert.pem",
    ]
    # A restart: a new store over the same directory, later, gives the same root and key.
    again = CAStore(ca_dir, trust_domain="example.org").load_signer(now=NOW + timedelta(days=3))
    assert again.certificate == first.certificate
    assert again.root_pem == first.root_pem
    assert again.key_pem == first.key_pem
    assert "O=example.org" in first.certificate.subject.rfc4514_string()


def test_token_key_is_made_once_and_kept(ca_dir: Path) -> None:
    key = CAStore(ca_dir).load_token_key()
    assert len(key) == 32
    assert mode(ca_dir / TOKEN_KEY_FILE) == 0o600
    assert CAStore(ca_dir).load_token_key() == key


def test_loose_key_modes_are_tightened(ca_dir: Path) -> None:
    store = CAStore(ca_dir)
    store.load_signer(now=NOW)
    store.load_token_key()
    os.chmod(ca_dir / "ca-key.pem", 0o644)
    os.chmod(ca_dir / TOKEN_KEY_FILE, 0o640)
    os.chmod(ca_dir, 0o755)
    store.load_signer(now=NOW)
    store.load_token_key()
    assert mode(ca_dir / "ca-key.pem") == 0o600
    assert mode(ca_dir / TOKEN_KEY_FILE) == 0o600
    assert mode(ca_dir) == 0o700


def test_an_incomplete_directory_is_reported_not_overwritten(ca_dir: Path) -> None:
    CAStore(ca_dir).load_signer(now=NOW)
    (ca_dir / "ca-key.pem").unlink()
    before = (ca_dir / "ca-cert.pem").read_bytes()
    with pytest.raises(CertificateError, match="incomplete"):
        CAStore(ca_dir).load_signer(now=NOW)
    assert (ca_dir / "ca-cert.pem").read_bytes() == before


def test_a_short_token_key_is_reported(ca_dir: Path) -> None:
    ca_dir.mkdir(parents=True)
    (ca_dir / TOKEN_KEY_FILE).write_bytes(b"abc")
    with pytest.raises(CertificateError, match="3 bytes"):
        CAStore(ca_dir).load_token_key()


def test_plugin_directory(ca_dir: Path, tmp_path: Path, rsa_root: Signer) -> None:
    intermediate = make_intermediate(rsa_root, now=NOW)
    plugin = tmp_path / "cacerts"
    plugin.mkdir()
    (plugin / "ca-cert.pem").write_bytes(intermediate.certificate_pem)
    (plugin / "ca-key.pem").write_bytes(intermediate.key_pem)
    (plugin / "root-cert.pem").write_bytes(rsa_root.root_pem)
    (plugin / "cert-chain.pem").write_bytes(intermediate.certificate_pem + rsa_root.root_pem)
    signer = CAStore(ca_dir, plugin_directory=plugin).load_signer(now=NOW)
    assert signer.certificate == intermediate.certificate
    assert signer.root == rsa_root.certificate
    assert not (ca_dir / "ca-key.pem").exists()  # nothing is made when a plug-in CA is given


def test_an_empty_plugin_directory_is_reported(ca_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(CertificateError, match="no CA files"):
        CAStore(ca_dir, plugin_directory=tmp_path).load_signer(now=NOW)


def test_plugin_errors_name_the_file(ca_dir: Path, tmp_path: Path, rsa_root: Signer) -> None:
    plugin = tmp_path / "cacerts"
    plugin.mkdir()
    (plugin / "ca-cert.pem").write_bytes(rsa_root.certificate_pem)
    (plugin / "ca-key.pem").write_bytes(rsa_root.key_pem)
    with pytest.raises(CertificateError) as caught:
        CAStore(ca_dir, plugin_directory=plugin).load_signer(now=NOW)
    assert str(caught.value) == f"{plugin / 'root-cert.pem'}: the plug-in CA has no root-cert.pem"
