"""Fuzzing the YAML loader: any text gives resources or a MeshletError, nothing else."""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshlet.errors import MeshletError
from meshlet.resources.loader import decode_text

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SEED = """apiVersion: networking.istio.io/v1alpha3
kind: Sidecar
metadata:
  name: ingress-sidecar
  namespace: test
spec:
  workloadSelector:
    labels:
      app: httpbin
  ingress:
  - port:
      number: 9080
      protocol: HTTPS
      name: external
    defaultEndpoint: 0.0.0.0:80
    tls:
      mode: SIMPLE
      privateKey: /etc/istio/tls-certs/tls.key
      serverCertificate: /etc/istio/tls-certs/tls.crt
---
apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata: {name: default, namespace: test}
spec: {mtls: {mode: STRICT}, portLevelMtls: {"9080": {mode: DISABLE}}}
"""

YAML_PIECES = st.sampled_from(
    [":", "- ", "  ", "\n", "---\n", "{", "}", "[", "]", "&a ", "*a", "!!binary ", "!tag ",
     "? ", "|", ">", "'", '"', "#", "%YAML 1.1\n", "<<: *a\n", "kind: ", "apiVersion: v1\n",
     "metadata:\n  name: x\n", "\t", "\x00", "\ufeff", "~", "null", "1e999", "0x1F"]
)  # fmt: skip


def _load(text: str) -> None:
    with contextlib.suppress(MeshletError):  # anything else fails the example
        decode_text(text, "fuzz.yaml")


@FUZZ
@given(st.text(max_size=300))
def test_random_text(text: str) -> None:
    _load(text)


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes_decoded(data: bytes) -> None:
    _load(data.decode("utf-8", "replace"))


@FUZZ
@given(st.lists(YAML_PIECES | st.text(max_size=8), max_size=40))
def test_yaml_shaped_text(pieces: list[str]) -> None:
    _load("".join(pieces))


@FUZZ
@given(st.lists(st.tuples(st.integers(0, len(SEED)), st.text(max_size=4)), max_size=6))
def test_mutated_scenario_documents(mutations: list[tuple[int, str]]) -> None:
    text = SEED
    for at, replacement in mutations:
        text = text[:at] + replacement + text[at + len(replacement) :]
    _load(text)
