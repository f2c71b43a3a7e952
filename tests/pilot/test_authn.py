"""Peer-authentication composition: every precedence rule, table-driven."""

from __future__ import annotations

import pytest

from meshlet.pilot.authn import ComposedMTLS, compose_peer_authentication
from meshlet.resources.istio import MTLSMode, PeerAuthentication

STRICT, PERMISSIVE, DISABLE, UNSET = (
    MTLSMode.STRICT,
    MTLSMode.PERMISSIVE,
    MTLSMode.DISABLE,
    MTLSMode.UNSET,
)
LABELS = {"app": "httpbin", "version": "v1"}


def pa(
    name: str,
    namespace: str,
    mode: MTLSMode | None,
    *,
    selector: dict[str, str] | None = None,
    ports: dict[int, MTLSMode] | None = None,
    created: str | None = None,
) -> PeerAuthentication:
    return PeerAuthentication(
        name=name,
        namespace=namespace,
        selector=selector,
        mtls_mode=mode,
        port_level_mtls=ports or {},
        creation_timestamp=created,
    )


CASES = [
    ("no policy: PERMISSIVE", [], PERMISSIVE, {}),
    ("mesh STRICT", [pa("m", "istio-system", STRICT)], STRICT, {}),
    (
        "namespace overrides mesh",
        [pa("m", "istio-system", STRICT), pa("n", "test", DISABLE)],
        DISABLE,
        {},
    ),
    (
        "workload overrides namespace",
        [pa("n", "test", STRICT), pa("w", "test", PERMISSIVE, selector={"app": "httpbin"})],
        PERMISSIVE,
        {},
    ),
    (
        "UNSET inherits from the level above",
        [pa("m", "istio-system", STRICT), pa("n", "test", UNSET)],
        STRICT,
        {},
    ),
    (
        "no mtls block inherits",
        [pa("n", "test", DISABLE), pa("w", "test", None, selector={"app": "httpbin"})],
        DISABLE,
        {},
    ),
    (
        "selector policy in the root namespace is ignored",
        [pa("r", "istio-system", DISABLE, selector={"app": "httpbin"})],
        PERMISSIVE,
        {},
    ),
    (
        "empty selector counts as no selector",
        [pa("n", "test", STRICT, selector={})],
        STRICT,
        {},
    ),
    (
        "a policy in another namespace does not apply",
        [pa("n", "other", STRICT), pa("w", "other", STRICT, selector={"app": "httpbin"})],
        PERMISSIVE,
        {},
    ),
    (
        "a selector that does not match does not apply",
        [pa("w", "test", DISABLE, selector={"app": "sleep"})],
        PERMISSIVE,
        {},
    ),
    (
        "oldest namespace policy wins",
        [
            pa("a-new", "test", DISABLE, created="2024-01-02T00:00:00Z"),
            pa("b-old", "test", STRICT, created="2024-01-01T00:00:00Z"),
        ],
        STRICT,
        {},
    ),
    (
        "oldest workload policy wins, with its ports",
        [
            pa(
                "new",
                "test",
                STRICT,
                selector=LABELS,
                ports={80: DISABLE},
                created="2024-02-01T00:00:00Z",
            ),
            pa(
                "old",
                "test",
                PERMISSIVE,
                selector={"app": "httpbin"},
                ports={81: STRICT},
                created="2024-01-01T00:00:00Z",
            ),
        ],
        PERMISSIVE,
        {81: STRICT},
    ),
    (
        "same age: the name decides",
        [
            pa("zeta", "test", DISABLE, created="2024-01-01T00:00:00Z"),
            pa("alpha", "test", STRICT, created="2024-01-01T00:00:00Z"),
        ],
        STRICT,
        {},
    ),
    (
        "oldest mesh policy wins",
        [
            pa("m2", "istio-system", DISABLE, created="2024-01-02T00:00:00Z"),
            pa("m1", "istio-system", STRICT, created="2024-01-01T00:00:00Z"),
        ],
        STRICT,
        {},
    ),
    (
        "the scenario: namespace STRICT, workload STRICT with 9080 DISABLE",
        [
            pa("default", "test", STRICT),
            pa(
                "disable-peer-auth-for-external-mtls-port",
                "test",
                STRICT,
                selector={"app": "httpbin"},
                ports={9080: DISABLE},
            ),
        ],
        STRICT,
        {9080: DISABLE},
    ),
    (
        "port-level UNSET means the workload's composed mode",
        [
            pa("n", "test", STRICT),
            pa("w", "test", UNSET, selector={"app": "httpbin"}, ports={9080: UNSET}),
        ],
        STRICT,
        {9080: STRICT},
    ),
    (
        "port levels of namespace policies are ignored",
        [pa("n", "test", STRICT, ports={9080: DISABLE})],
        STRICT,
        {},
    ),
    (
        "port levels of mesh policies are ignored",
        [pa("m", "istio-system", PERMISSIVE, ports={9080: STRICT})],
        PERMISSIVE,
        {},
    ),
]


@pytest.mark.parametrize(
    ("policies", "mode", "per_port"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_compose(
    policies: list[PeerAuthentication], mode: MTLSMode, per_port: dict[int, MTLSMode]
) -> None:
    composed = compose_peer_authentication(
        policies, namespace="test", workload_labels=LABELS, root_namespace="istio-system"
    )
    assert composed.mode is mode
    assert dict(composed.per_port) == per_port


def test_root_namespace_is_configurable() -> None:
    policies = [pa("m", "mesh-root", STRICT)]
    composed = compose_peer_authentication(
        policies, namespace="test", workload_labels=LABELS, root_namespace="mesh-root"
    )
    assert composed.mode is STRICT
    composed = compose_peer_authentication(
        policies, namespace="test", workload_labels=LABELS, root_namespace="istio-system"
    )
    assert composed.mode is PERMISSIVE  # a namespace policy of another namespace


def test_for_port_falls_back_to_the_workload_mode() -> None:
    composed = ComposedMTLS(mode=STRICT, per_port={9080: DISABLE})
    assert composed.for_port(9080) is DISABLE
    assert composed.for_port(9081) is STRICT


def test_result_never_unset() -> None:
    composed = compose_peer_authentication(
        [pa("m", "istio-system", UNSET), pa("w", "test", UNSET, selector=LABELS, ports={1: UNSET})],
        namespace="test",
        workload_labels=LABELS,
        root_namespace="istio-system",
    )
    assert composed.mode is PERMISSIVE
    assert composed.for_port(1) is PERMISSIVE
