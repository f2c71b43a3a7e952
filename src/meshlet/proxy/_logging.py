"""Log lines in Istio's style: ``<RFC 3339 UTC time>\\t<level>\\t<scope>\\t<message>``."""

from __future__ import annotations

import logging
import sys
import time

__all__ = ["setup_logging"]

_SCOPES = {
    "meshlet.agent": "agent",
    "meshlet.agent.cache": "cache",
    "meshlet.agent.sds": "sds",
    "meshlet.agent.workload_cert": "cache",
}
_LEVELS = {"WARNING": "warn", "CRITICAL": "error"}


class _IstioFormatter(logging.Formatter):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self._prefix = prefix

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        micros = int((record.created % 1) * 1_000_000)
        scope = _SCOPES.get(record.name) or record.name.rsplit(".", 1)[-1]
        level = _LEVELS.get(record.levelname, record.levelname.lower())
        message = record.getMessage()
        if record.exc_info:
            message += " " + self.formatException(record.exc_info).splitlines()[-1]
        return f"{stamp}.{micros:06d}Z\t{level}\t{self._prefix}{scope}\t{message}"


def setup_logging(level: str = "info", *, prefix: str = "") -> None:
    """Send every log record to stdout, one Istio-style line each."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_IstioFormatter(prefix))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # the libraries' own chatter stays out unless asked for
    for noisy in ("grpc", "asyncio", "watchfiles"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
