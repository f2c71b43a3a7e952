"""Which source serves which SDS resource name, and who to tell when one changes.

``ROOTCA`` (and a ``file-root:`` name with an empty path) is the mesh root;
``file-cert:``/``file-root:`` names with paths are read from files; every other name is
the workload certificate, as Istio's agent serves it. SDS streams ``acquire`` the
names they are asked for (which starts file watches), ``subscribe`` to changes, and
``get`` what to send.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable

from meshlet.agent.file_secrets import (
    DEFAULT_FILE_BACKOFF,
    DEFAULT_POLL_INTERVAL,
    FileSecrets,
    FileSecretStatus,
)
from meshlet.agent.rotation import Backoff
from meshlet.agent.secret import SecretItem, SecretKind, SecretSource, kind_of, source_of
from meshlet.agent.workload_cert import WorkloadCertificates

__all__ = ["SecretCache"]

log = logging.getLogger("meshlet.agent.cache")


class SecretCache:
    """The agent's secrets by SDS resource name."""

    def __init__(
        self,
        *,
        file_backoff: Backoff = DEFAULT_FILE_BACKOFF,
        file_poll_interval: float = DEFAULT_POLL_INTERVAL,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.files = FileSecrets(
            self.notify, backoff=file_backoff, poll_interval=file_poll_interval, rand=rand
        )
        self.workload: WorkloadCertificates | None = None
        #: ``ROOTCA`` when there is no CA to get certificates from (files only).
        self.root: SecretItem | None = None
        self._subscribers: dict[int, Callable[[str], None]] = {}
        self._next_id = 0

    def get(self, name: str) -> SecretItem | None:
        """What to serve under ``name`` now; ``None`` while it is not available yet."""
        source = source_of(name)
        if source in (SecretSource.FILE_CERT, SecretSource.FILE_ROOT):
            return self.files.get(name)
        if source is SecretSource.ROOT or kind_of(name) is SecretKind.VALIDATION_CONTEXT:
            root = self.root if self.workload is None else self.workload.root()
            return None if root is None else root.renamed(name)
        if self.workload is None:
            return None
        item = self.workload.certificate()
        return None if item is None else item.renamed(name)

    def status(self, name: str) -> FileSecretStatus | None:
        """For a file resource, whether it is loaded and why its last load failed."""
        return self.files.status(name)

    def acquire(self, names: Iterable[str]) -> None:
        for name in names:
            if source_of(name) in (SecretSource.FILE_CERT, SecretSource.FILE_ROOT):
                self.files.acquire(name)

    def release(self, names: Iterable[str]) -> None:
        for name in names:
            if source_of(name) in (SecretSource.FILE_CERT, SecretSource.FILE_ROOT):
                self.files.release(name)

    def subscribe(self, callback: Callable[[str], None]) -> Callable[[], None]:
        """Call ``callback(name)`` on every change; returns the function that unsubscribes."""
        key = self._next_id
        self._next_id += 1
        self._subscribers[key] = callback

        def unsubscribe() -> None:
            self._subscribers.pop(key, None)

        return unsubscribe

    def notify(self, name: str) -> None:
        for callback in list(self._subscribers.values()):
            try:
                callback(name)
            except Exception:
                log.exception("secret change subscriber failed for %s", name)

    async def aclose(self) -> None:
        await self.files.aclose()
        if self.workload is not None:
            await self.workload.aclose()
