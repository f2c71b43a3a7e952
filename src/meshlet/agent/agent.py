"""The per-pod agent: the workload's identity and the SDS server the proxy reads it from.

``Agent(config)`` ties the parts together: ``WorkloadCertificates`` (key, CSR, the CA,
rotation), ``FileSecrets`` (mounted certificates), the ``SecretCache`` that routes SDS
resource names to them, and the ``SDSServer`` on the pod's unix socket
``./var/run/secrets/workload-spiffe-uds/socket`` under ``config.root_dir``.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType

from meshlet.agent.cache import SecretCache
from meshlet.agent.file_secrets import DEFAULT_FILE_BACKOFF, DEFAULT_POLL_INTERVAL
from meshlet.agent.keys import KeyOptions
from meshlet.agent.rotation import DEFAULT_GRACE_RATIO, DEFAULT_GRACE_RATIO_JITTER, Backoff
from meshlet.agent.sds import SDSServer
from meshlet.agent.secret import ROOT_CERT_RESOURCE_NAME, SecretItem
from meshlet.agent.workload_cert import (
    DEFAULT_CA_BACKOFF,
    DEFAULT_CERT_TTL,
    CertificateFetcher,
    WorkloadCertificates,
)
from meshlet.errors import CertificateError, MeshletError

__all__ = ["DEFAULT_CA_SERVER_NAME", "SDS_SOCKET_PATH", "Agent", "AgentConfig"]

log = logging.getLogger("meshlet.agent")

#: Where Envoy's bootstrap cluster ``sds-grpc`` finds the agent, relative to the pod root.
SDS_SOCKET_PATH = "./var/run/secrets/workload-spiffe-uds/socket"
DEFAULT_CA_SERVER_NAME = "istiod.istio-system.svc"


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """What one pod's agent needs to know.

    ``ca_address`` is ``host:port`` of the CA (``None``: no workload certificate, only
    ``ROOTCA`` and file secrets). ``root_cert_path`` is the mesh root the agent trusts
    the CA with; ``token_path`` the pod's token file, read afresh for every request.
    """

    pod_name: str
    namespace: str
    service_account: str
    root_cert_path: str
    ca_address: str | None = None
    token_path: str | None = None
    trust_domain: str = "cluster.local"
    root_dir: str = "/"
    cert_ttl: timedelta = DEFAULT_CERT_TTL
    key_options: KeyOptions = field(default_factory=KeyOptions)
    ca_server_name: str = DEFAULT_CA_SERVER_NAME
    grace_ratio: float = DEFAULT_GRACE_RATIO
    grace_ratio_jitter: float = DEFAULT_GRACE_RATIO_JITTER
    ca_backoff: Backoff = DEFAULT_CA_BACKOFF
    ca_request_timeout: float = 10.0
    file_backoff: Backoff = DEFAULT_FILE_BACKOFF
    file_poll_interval: float = DEFAULT_POLL_INTERVAL

    @property
    def sds_socket_path(self) -> str:
        return os.path.normpath(os.path.join(self.root_dir, SDS_SOCKET_PATH))

    @property
    def spiffe_id(self) -> str:
        from meshlet.ca.signing import SpiffeId

        return str(SpiffeId(self.trust_domain, self.namespace, self.service_account))


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Agent:
    """``await start()`` → serving SDS; ``await stop()`` → everything closed."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        fetch: CertificateFetcher | None = None,
        now: Callable[[], datetime] = _utc_now,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self._fetch = fetch
        self._now = now
        self._rand = rand
        self.cache = SecretCache(
            file_backoff=config.file_backoff,
            file_poll_interval=config.file_poll_interval,
            rand=rand,
        )
        self.workload: WorkloadCertificates | None = None
        self.sds = SDSServer(self.cache, config.sds_socket_path, now=now)
        self._started = False

    @property
    def sds_socket_path(self) -> str:
        return self.config.sds_socket_path

    async def start(self) -> None:
        if self._started:
            raise RuntimeError("the agent is already started")
        self._started = True
        config = self.config
        try:
            with open(config.root_cert_path, "rb") as file:
                root = file.read()
        except OSError as exc:
            raise CertificateError(
                f"cannot read the mesh root certificate {config.root_cert_path}: "
                f"{exc.strerror or exc}",
                field="rootCertPath",
            ) from None
        if b"-----BEGIN CERTIFICATE-----" not in root:
            raise CertificateError(
                f"no PEM certificate in the mesh root file {config.root_cert_path}",
                field="rootCertPath",
            )
        self.cache.root = SecretItem(ROOT_CERT_RESOURCE_NAME, trusted_ca=root)
        try:
            if config.ca_address is not None:
                workload = WorkloadCertificates(
                    spiffe_id=config.spiffe_id,
                    ca_address=config.ca_address,
                    root_cert=root,
                    token_source=self._read_token,
                    on_change=self.cache.notify,
                    ttl=config.cert_ttl,
                    key_options=config.key_options,
                    ca_server_name=config.ca_server_name,
                    grace_ratio=config.grace_ratio,
                    grace_ratio_jitter=config.grace_ratio_jitter,
                    backoff=config.ca_backoff,
                    request_timeout=config.ca_request_timeout,
                    fetch=self._fetch,
                    now=self._now,
                    rand=self._rand,
                )
                self.workload = workload
                self.cache.workload = workload
                await workload.start()
            try:
                await self.sds.start()
            except (OSError, RuntimeError) as exc:
                raise MeshletError(
                    f"cannot serve SDS on {config.sds_socket_path}: {exc}", field="rootDir"
                ) from None
        except BaseException:
            await self.stop()
            raise
        log.info(
            "agent for %s.%s (%s) serving SDS on %s",
            config.pod_name,
            config.namespace,
            config.spiffe_id,
            config.sds_socket_path,
        )

    async def stop(self) -> None:
        await self.sds.stop()
        await self.cache.aclose()

    async def __aenter__(self) -> Agent:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _read_token(self) -> str | None:
        path = self.config.token_path
        if path is None:
            return None
        try:
            with open(path, encoding="utf-8") as file:
                token = file.read().strip()
        except OSError as exc:
            log.warning("cannot read the pod token %s: %s", path, exc.strerror or exc)
            return None
        return token or None
