"""How a Deployment's ReplicaSet and pods are named: ``httpbin-5bbdbd6588-z9vbs``.

The ReplicaSet is ``<deployment>-<pod-template-hash>``: Kubernetes hashes the pod
template with FNV-32a, prints the 32-bit sum in decimal and maps each of those
characters into a safe alphabet (``rand.SafeEncodeString``), so the hash is up to
ten characters of ``bcdfghjklmnpqrstvwxz2456789``. Kubernetes feeds the hash with
its Go "deep hash" printing of the template struct; meshlet feeds it the
template's canonical JSON (sorted keys, no spaces) instead, so the hash is stable
(same template, same hash; any change, a new hash) and looks the same, but is not
bit-for-bit the value Kubernetes would compute for the same template. A pod is
``<replicaset>-<5 random characters>`` from the same alphabet (``generateName``,
the base cut to 58 characters); the randomness is passed in.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

__all__ = [
    "ALPHANUMS",
    "RandomSource",
    "fnv32a",
    "generate_name",
    "pod_name",
    "pod_template_hash",
    "random_suffix",
    "replica_set_name",
    "safe_encode",
]

ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"
_MAX_NAME = 63
_SUFFIX_LENGTH = 5
_MAX_BASE = _MAX_NAME - _SUFFIX_LENGTH


class RandomSource(Protocol):
    """Where random choices come from (``random.Random`` fits; tests pass a seeded one)."""

    def randrange(self, stop: int, /) -> int: ...


def fnv32a(data: bytes) -> int:
    """The 32-bit FNV-1a hash of ``data``."""
    value = 0x811C9DC5
    for byte in data:
        value ^= byte
        value = (value * 0x01000193) & 0xFFFFFFFF
    return value


def safe_encode(text: str) -> str:
    """``rand.SafeEncodeString``: each byte mapped into the alphabet without vowels."""
    return "".join(ALPHANUMS[byte % len(ALPHANUMS)] for byte in text.encode())


def pod_template_hash(template: Mapping[str, Any], collision_count: int | None = None) -> str:
    """The ``pod-template-hash`` label of a Deployment's pod template."""
    data = json.dumps(template, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    payload = data.encode()
    if collision_count is not None:
        payload += (collision_count & 0xFFFFFFFF).to_bytes(4, "little") + bytes(4)
    return safe_encode(str(fnv32a(payload)))


def replica_set_name(
    deployment: str, template: Mapping[str, Any], collision_count: int | None = None
) -> str:
    """``<deployment>-<pod-template-hash>``."""
    return f"{deployment}-{pod_template_hash(template, collision_count)}"


def random_suffix(rng: RandomSource, length: int = _SUFFIX_LENGTH) -> str:
    """``length`` random characters of the safe alphabet (``rand.String``)."""
    return "".join(ALPHANUMS[rng.randrange(len(ALPHANUMS))] for _ in range(length))


def generate_name(base: str, suffix: str) -> str:
    """``generateName``: ``base`` (cut to 58 characters) followed by ``suffix``."""
    return base[:_MAX_BASE] + suffix


def pod_name(replica_set: str, rng: RandomSource) -> str:
    """A new pod of ``replica_set``: ``<replicaset>-<5 random characters>``."""
    return generate_name(f"{replica_set}-", random_suffix(rng))
