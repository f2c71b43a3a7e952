"""The CA's files on disk: the root (or the plug-in CA) and the cluster's token key.

Theory of operation
-------------------
The directory (mode 0700) holds the self-signed CA in Istio's ``cacerts`` layout
(``ca-cert.pem``, ``ca-key.pem`` mode 0600, ``root-cert.pem``, an empty
``cert-chain.pem``) and ``token-signing.key`` (32 random bytes, mode 0600). The first
``load_signer`` makes the root; every later one, in this process or after a restart,
reads the same files back, so the mesh keeps its root. Each file is written to a
temporary name and renamed into place, the key before the certificate, so a crash
leaves either no CA or a whole one; a half-made directory is reported, never
overwritten. With ``plugin_directory`` the signer is read from there instead (an
operator's intermediate CA) and nothing is made.
"""

from __future__ import annotations

import os
import secrets
import stat
from datetime import datetime, timedelta
from pathlib import Path

from meshlet.ca.signing import (
    DEFAULT_ROOT_TTL,
    DEFAULT_TRUST_DOMAIN,
    PLUGIN_CA_FILES,
    Signer,
    load_plugin_ca,
    make_self_signed_root,
)
from meshlet.errors import CertificateError, Location

__all__ = ["TOKEN_KEY_FILE", "CAStore"]

TOKEN_KEY_FILE = "token-signing.key"
_TOKEN_KEY_BYTES = 32
_SECRET_FILES = frozenset({"ca-key.pem", TOKEN_KEY_FILE})


class CAStore:
    """The CA's durable state in one directory."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        trust_domain: str = DEFAULT_TRUST_DOMAIN,
        plugin_directory: str | os.PathLike[str] | None = None,
        root_ttl: timedelta = DEFAULT_ROOT_TTL,
        key_size: int = 2048,
    ) -> None:
        self.directory = Path(directory)
        self.trust_domain = trust_domain
        self.plugin_directory = Path(plugin_directory) if plugin_directory else None
        self.root_ttl = root_ttl
        self.key_size = key_size

    # --- the signer ---------------------------------------------------------------

    def load_signer(self, *, now: datetime) -> Signer:
        """The CA: the plug-in CA if one is configured, else the root made once here."""
        if self.plugin_directory is not None:
            return _load_from(self.plugin_directory)
        self._ensure_directory()
        present = [name for name in PLUGIN_CA_FILES if (self.directory / name).exists()]
        if not present:
            return self._create_root(now)
        if "ca-cert.pem" not in present or "ca-key.pem" not in present:
            raise CertificateError(
                f"the CA directory is incomplete (has {', '.join(present)}); "
                "restore it from a backup, or remove it to make a new root "
                "(every workload certificate will then need to be reissued)",
                location=Location(str(self.directory)),
            )
        _tighten(self.directory / "ca-key.pem")
        return _load_from(self.directory)

    def _create_root(self, now: datetime) -> Signer:
        signer = make_self_signed_root(
            self.trust_domain, now=now, key_size=self.key_size, ttl=self.root_ttl
        )
        _write_atomically(self.directory / "ca-key.pem", signer.key_pem)
        _write_atomically(self.directory / "root-cert.pem", signer.root_pem)
        _write_atomically(self.directory / "cert-chain.pem", b"")
        _write_atomically(self.directory / "ca-cert.pem", signer.certificate_pem)
        return signer

    # --- the token key ------------------------------------------------------------

    def load_token_key(self) -> bytes:
        """The cluster's token-signing key, made on first use (mode 0600)."""
        self._ensure_directory()
        path = self.directory / TOKEN_KEY_FILE
        try:
            key = path.read_bytes()
        except FileNotFoundError:
            key = secrets.token_bytes(_TOKEN_KEY_BYTES)
            _write_atomically(path, key)
            return key
        except OSError as exc:
            raise CertificateError(
                f"cannot read the token key: {exc.strerror}", location=Location(str(path))
            ) from None
        if len(key) < _TOKEN_KEY_BYTES:
            raise CertificateError(
                f"the token key is {len(key)} bytes; want {_TOKEN_KEY_BYTES}",
                location=Location(str(path)),
            )
        _tighten(path)
        return key

    # --- helpers ------------------------------------------------------------------

    def _ensure_directory(self) -> None:
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self.directory, 0o700)
        except OSError as exc:
            raise CertificateError(
                f"cannot make the CA directory: {exc.strerror}",
                location=Location(str(self.directory)),
            ) from None


def _load_from(directory: Path) -> Signer:
    """``load_plugin_ca`` over a directory; errors name the file with its directory."""
    try:
        return load_plugin_ca(_read_layout(directory))
    except CertificateError as exc:
        if exc.location is not None and "/" not in exc.location.file:
            exc.location = Location(str(directory / exc.location.file))
        raise


def _read_layout(directory: Path) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for name in PLUGIN_CA_FILES:
        path = directory / name
        try:
            files[name] = path.read_bytes()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise CertificateError(
                f"cannot read {name}: {exc.strerror}", location=Location(str(path))
            ) from None
    if not files:
        raise CertificateError(
            "no CA files here (want ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem)",
            location=Location(str(directory)),
        )
    return files


def _tighten(path: Path) -> None:
    """Keys are readable by their owner only, whatever a restore left behind."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        os.chmod(path, 0o600)


def _write_atomically(path: Path, data: bytes) -> None:
    mode = 0o600 if path.name in _SECRET_FILES else 0o644
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        temporary.unlink(missing_ok=True)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as file:
            os.fchmod(fd, mode)
            file.write(data)
            file.flush()
            os.fsync(fd)
        os.replace(temporary, path)
        directory_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory_fd)
        finally:
            os.close(directory_fd)
    except OSError as exc:
        raise CertificateError(
            f"cannot write {path.name}: {exc.strerror}", location=Location(str(path))
        ) from None
