"""MSH0001: the TLS block of a Sidecar ingress port that will be ignored, with the
PeerAuthentication that decides it and the exact portLevelMtls change that fixes it."""

from __future__ import annotations

from meshlet.analyzers.message import Message
from tests.analyzers import fixtures as f
from tests.analyzers.support import FILE, of, run
from tests.manifests import line_of

TLS_LINE = line_of(f.join(f.DEPLOYMENT, f.SERVICE, f.SIDECAR), "    tls:")


def _one(messages: list[Message]) -> Message:
    found = of(messages, "MSH0001")
    assert len(found) == 1, "\n".join(map(str, messages))
    return found[0]


def test_a_namespace_wide_strict_policy_names_the_policy_and_the_fix() -> None:
    text = f.join(f.DEPLOYMENT, f.SERVICE, f.SIDECAR, f.NAMESPACE_STRICT)
    message = _one(run(text))
    mtls_line = line_of(text, "  mtls:", after="name: default")
    assert str(message) == (
        f"Warning [MSH0001] (Sidecar test/ingress-sidecar {FILE}:{TLS_LINE}) The tls settings "
        "of ingress port 9080 are ignored for Deployment test/httpbin: the port's mTLS mode is "
        f"STRICT, set by the mtls of PeerAuthentication test/default ({FILE}:{mtls_line}), and "
        "the sidecar uses its own tls settings only where the mode is DISABLE. As a result, a "
        "client's own TLS handshake meets the mesh certificate and a demand for a mesh client "
        "certificate, and fails. Fix: add a PeerAuthentication in namespace test with spec: "
        "{selector: {matchLabels: {app: httpbin, version: v1}}, mtls: {mode: STRICT}, "
        "portLevelMtls: {9080: {mode: DISABLE}}}."
    )


def test_the_flag_off_is_named_with_its_setting() -> None:
    message = _one(run(f.SCENARIO, flag=False))
    assert "ENABLE_TLS_ON_SIDECAR_INGRESS is off" in message.text
    assert "Fix: install with --set values.pilot.env.ENABLE_TLS_ON_SIDECAR_INGRESS=true." in (
        message.text
    )
    assert "mTLS mode" not in message.text  # the port is DISABLE: only the flag is wrong


def test_both_reasons_at_once() -> None:
    text = f.join(f.DEPLOYMENT, f.SERVICE, f.SIDECAR, f.NAMESPACE_STRICT)
    message = _one(run(text, flag=False))
    assert "ENABLE_TLS_ON_SIDECAR_INGRESS is off; and the port's mTLS mode is STRICT" in (
        message.text
    )
    assert "--set values.pilot.env.ENABLE_TLS_ON_SIDECAR_INGRESS=true; and add a " in message.text


def test_a_port_level_strict_entry_is_changed_where_it_is_written() -> None:
    text = f.SCENARIO.replace("    9080:\n      mode: DISABLE", "    9080:\n      mode: STRICT")
    message = _one(run(text))
    key_line = line_of(text, "    9080:")
    assert (
        f"set by the portLevelMtls 9080 of PeerAuthentication "
        f"test/disable-peer-auth-for-external-mtls-port ({FILE}:{key_line})"
    ) in message.text
    assert message.text.endswith(
        "Fix: in PeerAuthentication test/disable-peer-auth-for-external-mtls-port "
        f"({FILE}:{key_line}) change portLevelMtls 9080 from {{mode: STRICT}} to {{mode: DISABLE}}."
    )


def test_a_workload_policy_without_the_port_gets_the_entry_added() -> None:
    text = f.SCENARIO.replace("    9080:\n      mode: DISABLE", "    9081:\n      mode: STRICT")
    message = _one(run(text))
    spec_line = line_of(text, "spec:", after="name: disable-peer-auth")
    assert "set by the mtls of PeerAuthentication test/disable-peer-auth" in message.text
    assert message.text.endswith(
        "Fix: add portLevelMtls: {9080: {mode: DISABLE}} to the spec of PeerAuthentication "
        f"test/disable-peer-auth-for-external-mtls-port ({FILE}:{spec_line})."
    )


def test_no_policy_at_all_is_istios_default_permissive() -> None:
    message = _one(run(f.join(f.DEPLOYMENT, f.SERVICE, f.SIDECAR)))
    assert "mTLS mode is PERMISSIVE (no PeerAuthentication applies: Istio's default)" in (
        message.text
    )
    assert "mtls: {mode: PERMISSIVE}, portLevelMtls: {9080: {mode: DISABLE}}" in message.text


def test_a_mesh_wide_policy_in_the_root_namespace_decides_too() -> None:
    mesh_policy = f.NAMESPACE_STRICT.replace(
        "name: default\n", "name: default\n  namespace: istio-system\n"
    )
    text = f.join(f.DEPLOYMENT, f.SERVICE, f.SIDECAR, mesh_policy)
    message = _one(run(text))
    assert "set by the mtls of PeerAuthentication istio-system/default" in message.text


def test_the_oldest_workload_policy_is_the_one_named() -> None:
    newer = f.PORT_DISABLE.replace(
        "name: disable-peer-auth-for-external-mtls-port", "name: newer"
    ).replace("metadata:\n", "metadata:\n  creationTimestamp: '2024-01-02T00:00:00Z'\n")
    older = (
        f.PORT_DISABLE.replace("name: disable-peer-auth-for-external-mtls-port", "name: older")
        .replace("metadata:\n", "metadata:\n  creationTimestamp: '2024-01-01T00:00:00Z'\n")
        .replace("    9080:\n      mode: DISABLE", "    9080:\n      mode: PERMISSIVE")
    )
    text = f.join(f.DEPLOYMENT, f.SERVICE, f.SIDECAR, f.NAMESPACE_STRICT, newer, older)
    message = _one(run(text))
    assert "PERMISSIVE, set by the portLevelMtls 9080 of PeerAuthentication test/older" in (
        message.text
    )
    assert "change portLevelMtls 9080 from {mode: PERMISSIVE} to {mode: DISABLE}" in message.text


def test_without_workloads_the_selector_stands_for_them() -> None:
    message = _one(run(f.join(f.SIDECAR, f.NAMESPACE_STRICT)))
    assert "ignored for the workloads it selects" in message.text
    assert "{selector: {matchLabels: {app: httpbin, version: v1}}" in message.text


def test_a_port_that_another_sidecar_scopes_is_not_judged_by_this_one() -> None:
    # An older Sidecar selecting the same pods is the one pilot uses for them.
    older = f.SIDECAR.replace("name: ingress-sidecar", "name: aaa-older").replace(
        "metadata:\n", "metadata:\n  creationTimestamp: '2020-01-01T00:00:00Z'\n"
    )
    text = f.join(
        f.DEPLOYMENT,
        f.SERVICE,
        f.SIDECAR.replace(
            "metadata:\n", "metadata:\n  creationTimestamp: '2024-01-01T00:00:00Z'\n"
        ),
        older,
        f.NAMESPACE_STRICT,
    )
    found = of(run(text), "MSH0001")
    assert [m.resource.name for m in found if m.resource] == ["aaa-older"]
