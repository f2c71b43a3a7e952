"""The repository's own manifests, read where they live, for the tests that use them.

The reference scenario is ``examples/sidecar-tls-termination`` (httpbin, its Sidecar
and its PeerAuthentications); the samples are ``samples/httpbin`` and ``samples/sleep``.
Tests take the text from here rather than keeping copies; a test that needs the text
changed keeps only its change, as a ``str.replace`` on what it takes.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "sidecar-tls-termination"
HTTPBIN_PATH = EXAMPLE / "httpbin.yaml"
SIDECAR_PATH = EXAMPLE / "sidecar.yaml"
PEER_AUTHENTICATION_PATH = EXAMPLE / "peer-authentication.yaml"
SAMPLE_HTTPBIN_PATH = REPO / "samples" / "httpbin" / "httpbin.yaml"
SAMPLE_SLEEP_PATH = REPO / "samples" / "sleep" / "sleep.yaml"


def documents(path: Path) -> list[str]:
    """The YAML documents of ``path``, each as its own text (without ``---``)."""
    found: list[list[str]] = [[]]
    for line in path.read_text().splitlines(keepends=True):
        if line.rstrip() == "---":
            found.append([])
        else:
            found[-1].append(line)
    return ["".join(lines) for lines in found if any(_is_content(line) for line in lines)]


def document(path: Path, kind: str, name: str | None = None) -> str:
    """The one document of ``path`` of this ``kind`` (and ``name``)."""
    matches = [
        text
        for text in documents(path)
        if f"\nkind: {kind}\n" in f"\n{text}"
        and (name is None or f"\n  name: {name}\n" in f"\n{text}")
    ]
    if len(matches) != 1:
        raise LookupError(f"{len(matches)} documents of kind {kind} ({name}) in {path}")
    return matches[0]


def join(*texts: str) -> str:
    """Documents as one multi-document text."""
    return "---\n".join(texts)


def line_of(text: str, needle: str, *, after: str | None = None) -> int:
    """The 1-based line of the first line holding ``needle`` (after the line holding ``after``)."""
    started = after is None
    for number, line in enumerate(text.splitlines(), start=1):
        if not started:
            started = after in line
            continue
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in the text")


def _is_content(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith("#")


HTTPBIN = HTTPBIN_PATH.read_text()
"""ServiceAccount, Service and Deployment ``httpbin``."""
HTTPBIN_SERVICE = document(HTTPBIN_PATH, "Service")
HTTPBIN_DEPLOYMENT = document(HTTPBIN_PATH, "Deployment")
SIDECAR = document(SIDECAR_PATH, "Sidecar")
"""Sidecar ``ingress-sidecar``: MUTUAL TLS on port 9080, plain HTTP on 9081."""
NAMESPACE_STRICT = document(PEER_AUTHENTICATION_PATH, "PeerAuthentication", "default")
PORT_DISABLE = document(
    PEER_AUTHENTICATION_PATH,
    "PeerAuthentication",
    "disable-peer-auth-for-external-mtls-port",
)
TEST_NAMESPACE = """\
apiVersion: v1
kind: Namespace
metadata:
  name: test
  labels:
    istio-injection: enabled
"""
"""The namespace the scenario runs in, labelled for injection (the scenario's steps create
and label it with kubectl rather than a file)."""
