"""A Deployment's ReplicaSet and pod names."""

from __future__ import annotations

import random
import re

from meshlet.kubectl.pod_names import (
    ALPHANUMS,
    fnv32a,
    generate_name,
    pod_name,
    pod_template_hash,
    replica_set_name,
    safe_encode,
)

TEMPLATE = {
    "metadata": {"labels": {"app": "httpbin", "version": "v1"}},
    "spec": {"containers": [{"name": "httpbin", "image": "docker.io/kennethreitz/httpbin"}]},
}


def test_fnv32a_known_values() -> None:
    assert fnv32a(b"") == 0x811C9DC5
    assert fnv32a(b"a") == 0xE40C292C
    assert fnv32a(b"foobar") == 0xBF9CF968


def test_safe_encoding_of_digits() -> None:
    assert safe_encode("0123456789") == "456789bcdf"
    # so a hash uses ten characters only, as the scenario's pods show
    for real in ("5bbdbd6588", "557747455f"):
        assert set(real) <= set(safe_encode("0123456789"))
    assert set(pod_template_hash(TEMPLATE)) <= set("456789bcdf")


def test_hash_is_stable_and_changes_with_the_template() -> None:
    first = pod_template_hash(TEMPLATE)
    reordered = {"spec": TEMPLATE["spec"], "metadata": TEMPLATE["metadata"]}
    assert pod_template_hash(reordered) == first
    assert re.fullmatch(f"[{ALPHANUMS}]{{1,10}}", first)
    changed = {**TEMPLATE, "metadata": {"labels": {"app": "httpbin", "version": "v2"}}}
    assert pod_template_hash(changed) != first
    assert pod_template_hash(TEMPLATE, collision_count=1) != first
    assert replica_set_name("httpbin", TEMPLATE) == f"httpbin-{first}"


def test_pod_names() -> None:
    rs = replica_set_name("sleep", TEMPLATE)
    name = pod_name(rs, random.Random(7))
    assert name.startswith(rs + "-")
    assert re.fullmatch(f"[{ALPHANUMS}]{{5}}", name[len(rs) + 1 :])
    assert pod_name(rs, random.Random(7)) == name
    assert pod_name(rs, random.Random(8)) != name
    assert len(generate_name("x" * 80 + "-", "abcde")) == 63
