"""The workload certificate (``default``) and the mesh root (``ROOTCA``).

Theory of operation
-------------------
One task owns the certificate. It makes a fresh key and CSR, asks the CA, and serves
what comes back: ``default`` is the whole chain the CA returned (leaf first, root last)
with the key; ``ROOTCA`` is the chain's last certificate (until the first answer, the
root the agent was configured to trust). It then sleeps until ``rotate_at`` — half the
lifetime, ±1 % — and starts over with a new key.

How the agent proves who it is: with its current certificate while that is still valid
(mutual TLS to the CA, as a renewing workload does), otherwise — or if the CA refuses the
certificate — with the pod's token, read afresh from its file each time.

When the CA cannot be reached or refuses, the attempt is retried with back-off and the
current certificate stays served, even past its renewal time. Every change calls
``on_change(name)`` so the SDS server pushes it.

The private key never leaves the process: it is generated here, used as the TLS client
key towards the CA (so it goes to the local TLS library, never on the wire) and handed
to the SDS server for Envoy's use; ``SecretItem`` keeps it out of its ``repr`` and no
log line here names it.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from cryptography import x509

from meshlet.agent.keys import (
    DEFAULT_KEY_OPTIONS,
    KeyAndCSR,
    KeyOptions,
    key_matches_certificate,
    make_key_and_csr,
)
from meshlet.agent.rotation import (
    DEFAULT_GRACE_RATIO,
    DEFAULT_GRACE_RATIO_JITTER,
    Backoff,
    rotate_at,
)
from meshlet.agent.secret import (
    ROOT_CERT_RESOURCE_NAME,
    WORKLOAD_CERT_RESOURCE_NAME,
    SecretItem,
)

__all__ = [
    "DEFAULT_CA_BACKOFF",
    "DEFAULT_CERT_TTL",
    "CertificateFetcher",
    "WorkloadCertStatus",
    "WorkloadCertificates",
]

log = logging.getLogger("meshlet.agent.cache")

DEFAULT_CERT_TTL = timedelta(hours=24)  # Istio's SECRET_TTL
DEFAULT_CA_BACKOFF = Backoff(initial=0.2, maximum=30.0, jitter=0.2)
#: Never renew more often than this, whatever a certificate's lifetime says.
MIN_ROTATION_DELAY = 0.5


class CertificateFetcher(Protocol):
    """The shape of ``meshlet.ca.client.create_certificate``."""

    def __call__(
        self,
        address: str,
        root_pem: bytes,
        csr_pem: bytes,
        ttl_seconds: int,
        *,
        token: str | None = None,
        cert_chain_pem: bytes | None = None,
        key_pem: bytes | None = None,
        server_name: str = ...,
        timeout: float = ...,
    ) -> Awaitable[list[str]]: ...


@dataclass(frozen=True, slots=True)
class WorkloadCertStatus:
    """What is served and when it will be renewed; why the last attempt failed, if it did."""

    serial_number: int | None
    not_before: datetime | None
    not_after: datetime | None
    rotate_at: datetime | None
    issued: int  # certificates received so far
    failures: int  # failed attempts since the last success
    last_error: str | None
    credential: str | None  # how the last certificate was obtained: "token" or "certificate"


@dataclass(frozen=True, slots=True)
class _Issued:
    item: SecretItem
    leaf: x509.Certificate
    received_at: datetime
    rotate_at: datetime
    credential: str


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _default_fetcher() -> CertificateFetcher:
    from meshlet.ca.client import create_certificate

    return create_certificate


class WorkloadCertificates:
    """Keeps the ``default`` certificate fresh and serves ``ROOTCA``.

    ``start()`` begins fetching in the background; ``wait_ready()`` waits for the
    first certificate; ``aclose()`` stops. ``certificate()`` and ``root()`` return
    what to serve right now.
    """

    def __init__(
        self,
        *,
        spiffe_id: str,
        ca_address: str,
        root_cert: bytes,
        token_source: Callable[[], str | None],
        on_change: Callable[[str], None],
        ttl: timedelta = DEFAULT_CERT_TTL,
        key_options: KeyOptions = DEFAULT_KEY_OPTIONS,
        ca_server_name: str = "istiod.istio-system.svc",
        grace_ratio: float = DEFAULT_GRACE_RATIO,
        grace_ratio_jitter: float = DEFAULT_GRACE_RATIO_JITTER,
        backoff: Backoff = DEFAULT_CA_BACKOFF,
        request_timeout: float = 10.0,
        fetch: CertificateFetcher | None = None,
        now: Callable[[], datetime] = _utc_now,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if ttl.total_seconds() < 1:
            raise ValueError("the certificate TTL must be at least one second")
        self._spiffe_id = spiffe_id
        self._ca_address = ca_address
        self._ca_root = root_cert
        self._token_source = token_source
        self._on_change = on_change
        self._ttl = ttl
        self._key_options = key_options
        self._server_name = ca_server_name
        self._ratio = grace_ratio
        self._jitter = grace_ratio_jitter
        self._backoff = backoff
        self._timeout = request_timeout
        self._fetch = fetch
        self._now = now
        self._rand = rand
        self._root = SecretItem(ROOT_CERT_RESOURCE_NAME, trusted_ca=root_cert)
        self._issued: _Issued | None = None
        self._count = 0
        self._failures = 0
        self._last_error: str | None = None
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def spiffe_id(self) -> str:
        return self._spiffe_id

    def certificate(self) -> SecretItem | None:
        """The ``default`` secret, or ``None`` before the first certificate arrived."""
        return None if self._issued is None else self._issued.item

    def root(self) -> SecretItem:
        """The ``ROOTCA`` secret."""
        return self._root

    def status(self) -> WorkloadCertStatus:
        issued = self._issued
        return WorkloadCertStatus(
            serial_number=None if issued is None else issued.leaf.serial_number,
            not_before=None if issued is None else issued.leaf.not_valid_before_utc,
            not_after=None if issued is None else issued.leaf.not_valid_after_utc,
            rotate_at=None if issued is None else issued.rotate_at,
            issued=self._count,
            failures=self._failures,
            last_error=self._last_error,
            credential=None if issued is None else issued.credential,
        )

    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("already started")
        if self._fetch is None:
            self._fetch = _default_fetcher()
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name="workload certificate"
        )

    async def wait_ready(self) -> None:
        """Wait until a certificate has been received (bound it with ``asyncio.timeout``)."""
        await self._ready.wait()

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise

    async def _run(self) -> None:
        while True:
            await self._renew()
            issued = self._issued
            assert issued is not None
            delay = (issued.rotate_at - self._now()).total_seconds()
            delay = max(delay, MIN_ROTATION_DELAY)
            log.info(
                "resource:%s scheduled certificate for rotation in %.3fs",
                WORKLOAD_CERT_RESOURCE_NAME,
                delay,
            )
            await asyncio.sleep(delay)

    async def _renew(self) -> None:
        """Get a new certificate, retrying until one arrives."""
        attempt = 0
        while True:
            try:
                issued = await self._attempt()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._failures += 1
                self._last_error = _describe(exc)
                delay = self._backoff.delay(attempt, rand=self._rand)
                attempt += 1
                serving = (
                    "no certificate yet" if self._issued is None else "keeping the current one"
                )
                log.warning(
                    "resource:%s failed to get a certificate from the CA (%s; %s), retrying in %.3fs",
                    WORKLOAD_CERT_RESOURCE_NAME,
                    self._last_error,
                    serving,
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            self._install(issued)
            return

    async def _attempt(self) -> _Issued:
        fetch = self._fetch
        assert fetch is not None
        request = await asyncio.to_thread(make_key_and_csr, self._spiffe_id, self._key_options)
        ttl_seconds = int(self._ttl.total_seconds())
        chain: list[str] | None = None
        credential = "certificate"
        current = self._issued
        now = self._now()
        if current is not None and now < current.leaf.not_valid_after_utc:
            try:
                chain = await fetch(
                    self._ca_address,
                    self._ca_root,
                    request.csr_pem,
                    ttl_seconds,
                    cert_chain_pem=current.item.certificate_chain,
                    key_pem=current.item.private_key,
                    server_name=self._server_name,
                    timeout=self._timeout,
                )
            except Exception as exc:
                token = self._token_source()
                if token is None:
                    raise
                log.info(
                    "resource:%s renewal with the current certificate failed (%s); using the token",
                    WORKLOAD_CERT_RESOURCE_NAME,
                    _describe(exc),
                )
        if chain is None:
            credential = "token"
            token = self._token_source()
            if token is None and current is None:
                raise _NoCredential("no token to authenticate to the CA")
            chain = await fetch(
                self._ca_address,
                self._ca_root,
                request.csr_pem,
                ttl_seconds,
                token=token,
                server_name=self._server_name,
                timeout=self._timeout,
            )
        return self._check(chain, request, credential)

    def _check(self, chain: list[str], request: KeyAndCSR, credential: str) -> _Issued:
        if not chain:
            raise _BadResponse("the CA returned an empty certificate chain")
        try:
            leaf = x509.load_pem_x509_certificate(chain[0].encode("ascii"))
        except ValueError as exc:
            raise _BadResponse(f"the CA returned an unreadable certificate: {exc}") from None
        if not key_matches_certificate(request.key_pem, leaf):
            raise _BadResponse("the CA returned a certificate for another key")
        received_at = self._now()
        not_after = leaf.not_valid_after_utc
        start = min(received_at, not_after)
        when = rotate_at(start, not_after, ratio=self._ratio, jitter=self._jitter, rand=self._rand)
        chain_pem = "".join(pem if pem.endswith("\n") else pem + "\n" for pem in chain)
        item = SecretItem(
            WORKLOAD_CERT_RESOURCE_NAME,
            certificate_chain=chain_pem.encode("ascii"),
            private_key=request.key_pem,
        )
        return _Issued(
            item=item, leaf=leaf, received_at=received_at, rotate_at=when, credential=credential
        )

    def _install(self, issued: _Issued) -> None:
        self._issued = issued
        self._count += 1
        self._failures = 0
        self._last_error = None
        names = _san_uris(issued.leaf)
        if self._spiffe_id not in names:
            log.warning(
                "resource:%s the CA issued %s, not the requested %s",
                WORKLOAD_CERT_RESOURCE_NAME,
                ", ".join(names) or "no SPIFFE ID",
                self._spiffe_id,
            )
        log.info(
            "resource:%s new certificate generated (authenticated by %s), serial %x, expires %s",
            WORKLOAD_CERT_RESOURCE_NAME,
            issued.credential,
            issued.leaf.serial_number,
            issued.leaf.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        root_pem = _last_pem(issued.item.certificate_chain)
        root_changed = root_pem is not None and _normalized(root_pem) != _normalized(
            self._root.trusted_ca
        )
        if root_changed and root_pem is not None:
            self._root = SecretItem(ROOT_CERT_RESOURCE_NAME, trusted_ca=root_pem)
        self._ready.set()
        self._on_change(WORKLOAD_CERT_RESOURCE_NAME)
        if root_changed:
            log.info("resource:%s root certificate changed", ROOT_CERT_RESOURCE_NAME)
            self._on_change(ROOT_CERT_RESOURCE_NAME)


class _NoCredential(Exception):
    pass


class _BadResponse(Exception):
    pass


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _san_uris(certificate: x509.Certificate) -> list[str]:
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return [str(uri) for uri in san.value.get_values_for_type(x509.UniformResourceIdentifier)]


_PEM_BEGIN = b"-----BEGIN CERTIFICATE-----"


def _last_pem(chain: bytes) -> bytes | None:
    start = chain.rfind(_PEM_BEGIN)
    return None if start < 0 else chain[start:]


def _normalized(pem: bytes) -> bytes:
    return b"".join(pem.split())
