"""The policy the analyzers name agrees with pilot's composition for every mix of mesh,
namespace and workload policies and port-level entries."""

from __future__ import annotations

import itertools

import pytest

from meshlet.analyzers._authn import port_mode
from meshlet.analyzers.context import build_context
from meshlet.resources.istio import MTLSMode
from tests.analyzers import fixtures as f
from tests.analyzers.support import mesh, resources

MODES = (None, "UNSET", "DISABLE", "PERMISSIVE", "STRICT")


def _policy(name: str, namespace: str, mode: str | None, *, port: str | None = None) -> str:
    text = f"apiVersion: security.istio.io/v1beta1\nkind: PeerAuthentication\nmetadata:\n  name: {name}\n  namespace: {namespace}\nspec:\n"
    if port is not None:
        text += "  selector:\n    matchLabels:\n      app: httpbin\n"
    if mode is not None:
        text += f"  mtls:\n    mode: {mode}\n"
    if port is not None:
        text += f"  portLevelMtls:\n    9080:\n      mode: {port}\n"
    if text.endswith("spec:\n"):
        text += "  {}\n"
        text = text.replace("spec:\n  {}\n", "spec: {}\n")
    return text


@pytest.mark.parametrize(
    ("mesh_mode", "namespace_mode", "workload_mode", "port_level"),
    [
        combo
        for combo in itertools.product(MODES, MODES, MODES, ("UNSET", "DISABLE", "STRICT", None))
        if combo[2] is not None or combo[3] is None
    ][::7],
)
def test_the_named_policy_decides_the_composed_mode(
    mesh_mode: str | None,
    namespace_mode: str | None,
    workload_mode: str | None,
    port_level: str | None,
) -> None:
    documents = [f.DEPLOYMENT]
    if mesh_mode is not None:
        documents.append(_policy("mesh", "istio-system", mesh_mode))
    if namespace_mode is not None:
        documents.append(_policy("ns", "test", namespace_mode))
    if workload_mode is not None or port_level is not None:
        documents.append(_policy("workload", "test", workload_mode, port=port_level or "UNSET"))
    context = build_context(resources(f.join(*documents)), mesh())
    workload = context.mesh_workload(context.workloads[0])
    result = port_mode(context, workload, 9080)
    assert result.mode is context.snapshot.mtls_for(workload).for_port(9080)
    if result.decided_by is None:
        assert result.mode is MTLSMode.PERMISSIVE
    elif result.port_level:
        assert result.decided_by.value.port_level_mtls[9080] is result.mode
    else:
        assert result.decided_by.value.mtls_mode is result.mode
