"""Secrets read from mounted files: ``file-cert:<cert>~<key>`` and ``file-root:<ca>``.

Theory of operation
-------------------
Each watched resource has one task that loads its files, then waits for a reason to
load them again. A load that succeeds and differs from what is served replaces it and
calls ``on_change(name)`` (the SDS server pushes it). A load that fails — files missing,
not PEM, a key that is not the certificate's — never takes anything away:

- before the first good load the files are simply not there yet (a volume still being
  mounted); the task retries from 100 ms, backing off (Istio waits the same way);
- after a good load the last good pair stays served and the failure is recorded in
  ``status(name)`` and logged once; the task retries with back-off and is woken by the
  next change, so a fixed pair is picked up.

Reasons to load again: an event from watchfiles on the **directories** holding the
files — both the directory as written in the name and the one the path resolves to —
and a slow stat poll as a safety net. Watching the directory, not the file, is what sees
Kubernetes' atomic update: kubelet writes a new ``..<timestamp>`` directory, then renames
a temporary symlink over ``..data``; ``tls.crt`` itself (a symlink to
``..data/tls.crt``) never changes, so a watch on the file (or on the inode it resolved
to the first time) goes blind after the first swap. The directories are recomputed
after every load, so a symlink that starts pointing elsewhere is followed.

Nothing here caches across resources: two names over the same files read them apart,
as Istio's agent does. Private keys are held in memory only and never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from watchfiles import Change, awatch

from meshlet.agent.keys import key_matches_certificate
from meshlet.agent.rotation import Backoff
from meshlet.agent.secret import (
    FileCertificate,
    FileRoot,
    SecretItem,
    parse_resource_name,
)

__all__ = ["DEFAULT_FILE_BACKOFF", "FileSecretStatus", "FileSecrets", "load_file_secret"]

log = logging.getLogger("meshlet.agent.cache")

#: Istio's FILE_DEBOUNCE_DURATION (100 ms) is the first retry; retries stay frequent
#: because a missing file is usually a volume about to appear.
DEFAULT_FILE_BACKOFF = Backoff(initial=0.1, maximum=2.0)
DEFAULT_POLL_INTERVAL = 5.0
_SETTLE = 1.0  # when to look again after setting up a new directory watch

_Fingerprint = tuple[tuple[str, int, int, int, int] | None, ...]


class FileSecretError(Exception):
    """Why the files of a resource cannot be served (kept in the status, never raised out)."""


@dataclass(frozen=True, slots=True)
class FileSecretStatus:
    """What a watched file resource is serving and, if the last load failed, why."""

    resource_name: str
    loaded: bool
    last_error: str | None


def load_file_secret(spec: FileCertificate | FileRoot) -> SecretItem:
    """Read and check the files of ``spec``; raises ``FileSecretError`` saying why not.

    ``file-cert``: the chain parses and the key is the first certificate's key (what Go's
    ``tls.LoadX509KeyPair`` checks). ``file-root``: at least one certificate parses.
    """
    if isinstance(spec, FileRoot):
        trusted_ca = _read(spec.ca_certificate_path)
        _parse_certificates(spec.ca_certificate_path, trusted_ca)
        return SecretItem(resource_name=spec.resource_name, trusted_ca=trusted_ca)
    chain = _read(spec.certificate_path)
    key = _read(spec.private_key_path)
    certificates = _parse_certificates(spec.certificate_path, chain)
    try:
        matches = key_matches_certificate(key, certificates[0])
    except Exception as exc:  # ValueError, TypeError, UnsupportedAlgorithm: all mean "bad key"
        raise FileSecretError(
            f"failed to parse private key {spec.private_key_path}: {_first_line(exc)}"
        ) from None
    if not matches:
        raise FileSecretError(
            f"private key {spec.private_key_path} does not match the public key of "
            f"certificate {spec.certificate_path}"
        )
    return SecretItem(resource_name=spec.resource_name, certificate_chain=chain, private_key=key)


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as exc:
        raise FileSecretError(f"failed to read {path}: {exc.strerror or exc}") from None


def _parse_certificates(path: str, data: bytes) -> list[x509.Certificate]:
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise FileSecretError(
            f"failed to parse certificates in {path}: {_first_line(exc)}"
        ) from None
    if not certificates:
        raise FileSecretError(f"no certificate found in {path}")
    return certificates


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _paths(spec: FileCertificate | FileRoot) -> tuple[str, ...]:
    if isinstance(spec, FileRoot):
        return (spec.ca_certificate_path,)
    return (spec.certificate_path, spec.private_key_path)


def _fingerprint(paths: tuple[str, ...]) -> _Fingerprint:
    """What the stat poll compares: where each path leads and that file's identity."""
    out: list[tuple[str, int, int, int, int] | None] = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            out.append(None)
            continue
        out.append((os.path.realpath(path), st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size))
    return tuple(out)


def _watch_dirs(paths: tuple[str, ...]) -> frozenset[str]:
    """The existing directories whose changes can change what ``paths`` read.

    The directory of each path as written, and the directory its symlinks lead to —
    unless that lies inside one already watched (Kubernetes' ``..<timestamp>``
    directories: their swap shows in the parent, and watching them would mean a new
    watch after every update).
    """
    written = {os.path.dirname(os.path.abspath(path)) or "/" for path in paths}
    dirs = {d for d in written if os.path.isdir(d)}
    for path in paths:
        resolved = os.path.dirname(os.path.realpath(path)) or "/"
        inside = any(resolved == d or resolved.startswith(d.rstrip("/") + "/") for d in dirs)
        if not inside and os.path.isdir(resolved):
            dirs.add(resolved)
    return frozenset(dirs)


class _Watch:
    """The state of one watched resource (one per name, shared by all its watchers)."""

    __slots__ = ("events", "item", "last_error", "refs", "spec", "task", "wake")

    def __init__(self, spec: FileCertificate | FileRoot) -> None:
        self.spec = spec
        self.refs = 0
        self.item: SecretItem | None = None
        self.last_error: str | None = None
        self.wake = asyncio.Event()
        self.events: list[str] = []
        self.task: asyncio.Task[None] | None = None


class FileSecrets:
    """Loads, watches and reloads the file secrets that SDS clients ask for.

    ``acquire(name)`` starts watching (reference-counted), ``release(name)`` stops when
    the last user is gone, ``get(name)`` is what to serve (``None`` until the files
    have been read once), ``aclose()`` stops everything. ``on_change(name)`` is called
    in the event loop whenever ``get(name)`` starts returning something new.
    """

    def __init__(
        self,
        on_change: Callable[[str], None],
        *,
        backoff: Backoff = DEFAULT_FILE_BACKOFF,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._on_change = on_change
        self._backoff = backoff
        self._poll_interval = poll_interval
        self._rand = rand
        self._watches: dict[str, _Watch] = {}
        self._stopping: set[asyncio.Task[None]] = set()
        self._closed = False

    def acquire(self, name: str) -> None:
        """Start serving ``name`` (a ``file-cert:``/``file-root:`` name) if not yet."""
        if self._closed:
            raise RuntimeError("FileSecrets is closed")
        spec = parse_resource_name(name)
        if spec is None:
            raise ValueError(f"not a file secret name: {name!r}")
        watch = self._watches.get(name)
        if watch is None:
            watch = _Watch(spec)
            self._watches[name] = watch
            watch.task = asyncio.get_running_loop().create_task(
                self._run(name, watch), name=f"file-secret {name}"
            )
        watch.refs += 1

    def release(self, name: str) -> None:
        """One user of ``name`` is gone; stop watching when it was the last.

        The resource's task is cancelled now and awaited by ``aclose()`` (or by a later
        ``aclose()`` of whoever owns this object), so releasing never blocks a caller
        that is itself being cancelled.
        """
        watch = self._watches.get(name)
        if watch is None:
            return
        watch.refs -= 1
        if watch.refs <= 0:
            del self._watches[name]
            task = watch.task
            if task is not None and not task.done():
                task.cancel()
                self._stopping.add(task)
                task.add_done_callback(self._stopping.discard)

    def get(self, name: str) -> SecretItem | None:
        watch = self._watches.get(name)
        return None if watch is None else watch.item

    def status(self, name: str) -> FileSecretStatus | None:
        watch = self._watches.get(name)
        if watch is None:
            return None
        return FileSecretStatus(name, watch.item is not None, watch.last_error)

    def names(self) -> list[str]:
        return sorted(self._watches)

    async def aclose(self) -> None:
        self._closed = True
        tasks = [watch.task for watch in self._watches.values()]
        tasks.extend(self._stopping)
        self._watches.clear()
        for task in tasks:
            await _cancel(task)

    async def _run(self, name: str, watch: _Watch) -> None:
        paths = _paths(watch.spec)
        stop_watching: asyncio.Event | None = None
        watcher: asyncio.Task[None] | None = None
        watched: frozenset[str] = frozenset()
        announced = False
        attempt = 0
        loaded: _Fingerprint | None = None
        try:
            while True:
                watch.wake.clear()
                events, watch.events = watch.events, []
                before = _fingerprint(paths)
                # A change elsewhere in the folder (a log file, another secret) wakes the
                # watch too: read and check the pair again only when one of its files did
                # change, since checking a key against its certificate costs a signature.
                if before != loaded or watch.item is None or watch.last_error is not None:
                    self._load(name, watch, events)
                    loaded = before
                dirs = _watch_dirs(paths)
                # A new watch takes a moment to be set up: check the files once soon
                # after, in case they changed in between.
                first_check = self._poll_interval
                if dirs != watched:
                    old_watcher, old_stop = watcher, stop_watching
                    watcher, stop_watching, watched = None, None, dirs
                    if dirs:
                        if not announced:
                            for path in dict.fromkeys(paths):
                                log.info("adding watcher for file certificate %s", path)
                            announced = True
                        # The new watch starts before the old one stops: no gap.
                        stop_watching = asyncio.Event()
                        watcher = asyncio.get_running_loop().create_task(
                            self._watch_directories(watch, sorted(dirs), stop_watching),
                            name=f"file-secret watch {name}",
                        )
                        first_check = min(self._poll_interval, _SETTLE)
                    if old_stop is not None:
                        old_stop.set()
                    await _cancel(old_watcher)
                if watch.item is None or watch.last_error is not None:
                    # Not served yet, or the files on disk are broken: retry on a timer
                    # as well as on the next change.
                    delay = min(self._backoff.delay(attempt, rand=self._rand), self._poll_interval)
                    attempt += 1
                    await _wait(watch.wake, delay)
                    continue
                attempt = 0
                timeout = first_check
                while not await _wait(watch.wake, timeout):
                    if _fingerprint(paths) != before:
                        watch.events.append("stat poll: files changed")
                        break
                    timeout = self._poll_interval
        finally:
            if stop_watching is not None:
                stop_watching.set()
            await _cancel(watcher)

    def _load(self, name: str, watch: _Watch, events: list[str]) -> None:
        try:
            item = load_file_secret(watch.spec)
        except FileSecretError as exc:
            message = str(exc)
            if watch.item is not None and message != watch.last_error:
                log.warning(
                    "resource:%s failed to reload from files, keeping the last good secret: %s",
                    name,
                    message,
                )
            elif watch.item is None and watch.last_error is None:
                log.info("resource:%s waiting for files: %s", name, message)
            watch.last_error = message
            return
        if watch.last_error is not None and watch.item is not None:
            log.info("resource:%s files are valid again", name)
        watch.last_error = None
        if item == watch.item:
            return
        first = watch.item is None
        watch.item = item
        if first:
            log.info("resource:%s read certificate from file", name)
        else:
            what = ", ".join(events) if events else "changed"
            log.info("event for file certificate %s : %s, pushing to proxy", name, what)
        self._on_change(name)

    async def _watch_directories(self, watch: _Watch, dirs: list[str], stop: asyncio.Event) -> None:
        """Wake the loader on any change in ``dirs`` until ``stop`` is set.

        If the watch cannot be set up or ends (a directory removed), the loader is woken
        to look again, and the watch is set up anew after a poll interval.
        """
        while not stop.is_set():
            try:
                async for changes in awatch(
                    *dirs,
                    watch_filter=None,
                    recursive=False,
                    stop_event=stop,
                    step=20,
                    debounce=400,
                ):
                    for change, path in sorted(changes, key=lambda c: (c[1], c[0].value)):
                        watch.events.append(f"{_CHANGE_NAMES[change]} {path}")
                    watch.wake.set()
            except (OSError, RuntimeError) as exc:
                log.debug("directory watch on %s failed: %s", ", ".join(dirs), exc)
            if stop.is_set():
                return
            watch.wake.set()
            await _wait(stop, self._poll_interval)


_CHANGE_NAMES = {Change.added: "CREATE", Change.modified: "WRITE", Change.deleted: "REMOVE"}


async def _wait(event: asyncio.Event, timeout: float) -> bool:
    """Whether ``event`` was set within ``timeout`` seconds."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await event.wait()
            return True
    return False


async def _cancel(task: asyncio.Task[None] | None) -> None:
    """Cancel ``task`` and wait for it, without swallowing our own cancellation."""
    if task is None:
        return
    if not task.done():
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
            return
    if not task.cancelled() and task.exception() is not None:
        log.error("file secret task failed", exc_info=task.exception())
