"""Details of the user-volume, port-level and selector findings: the levels by mode, the
lines they name, and what stays quiet."""

from __future__ import annotations

from tests.analyzers import fixtures as f
from tests.analyzers.support import FILE, of, run
from tests.manifests import line_of

MISSING_CA = f.SECRETS.replace("name: httpbin-mtls-termination-cacert", "name: other")
MISSING_CERT = f.SECRETS.replace("name: httpbin-mtls-termination\n", "name: other\n")


def test_from_files_alone_without_any_secret_nothing_is_said() -> None:
    assert of(run(f.SCENARIO), "MSH0004") == []


def test_a_missing_secret_names_the_annotation_line() -> None:
    text = f.join(f.SCENARIO, MISSING_CA)
    (message,) = of(run(text), "MSH0004")
    assert message.location is not None
    assert str(message.location) == f"{FILE}:{line_of(text, 'sidecar.istio.io/userVolume:')}"
    assert "names Secret test/httpbin-mtls-termination-cacert, which does not exist" in str(message)


def test_in_the_cluster_an_optional_secret_is_a_warning_and_a_required_one_an_error() -> None:
    optional = of(run(f.SCENARIO, live=MISSING_CERT), "MSH0004")
    assert [m.level.value for m in optional] == ["Warning"]
    assert "the volume is optional" in optional[0].text
    required = of(run(f.SCENARIO, live=MISSING_CA), "MSH0004")
    assert [m.level.value for m in required] == ["Error"]


def test_a_secret_in_the_files_counts_in_the_cluster_too() -> None:
    assert of(run(f.join(f.SCENARIO, f.SECRETS), live=MISSING_CA), "MSH0004") == []


def test_the_files_win_over_the_cluster() -> None:
    cluster_sidecar = f.SIDECAR.replace("version: v1", "version: v9")
    messages = run(f.SCENARIO, live=f.join(cluster_sidecar, f.SECRETS))
    assert of(messages, "IST0127") == []  # the file's Sidecar replaced the cluster's


def test_messages_about_cluster_objects_have_no_file() -> None:
    cluster_sidecar = f.SIDECAR.replace("version: v1", "version: v9").replace(
        "name: ingress-sidecar", "name: from-cluster"
    )
    messages = of(run(f.SCENARIO, live=f.join(cluster_sidecar, f.SECRETS)), "IST0127")
    assert [str(m) for m in messages] == [
        "Warning [IST0127] (Sidecar test/from-cluster) No matching workloads for this resource "
        "with the following labels: app=httpbin,version=v9"
    ]


def test_a_port_level_key_on_a_named_target_port() -> None:
    service = f.SERVICE.replace("targetPort: 9080", "targetPort: web")
    deployment = f.DEPLOYMENT.replace(
        "- containerPort: 80", "- containerPort: 9080\n          name: web"
    )
    policy = f.PORT_DISABLE.replace("    9080:", "    8443:")
    text = f.join(deployment, service, f.SIDECAR, f.NAMESPACE_STRICT, policy)
    (message,) = of(run(text), "MSH0002")
    assert str(message.location) == f"{FILE}:{line_of(text, '    8443:')}"
    assert "whose targetPort is web" in message.text
    assert message.text.endswith(
        "Fix: key it by the targetPort: portLevelMtls: {9080: {mode: DISABLE}}."
    )


def test_a_key_that_is_also_a_container_port_is_not_judged() -> None:
    deployment = f.DEPLOYMENT.replace("- containerPort: 80", "- containerPort: 8443")
    policy = f.PORT_DISABLE.replace("    9080:", "    8443:")
    text = f.join(deployment, f.SERVICE, f.SIDECAR, f.NAMESPACE_STRICT, policy)
    assert of(run(text), "MSH0002") == []


def test_a_workload_opting_out_of_injection_is_named() -> None:
    deployment = f.DEPLOYMENT.replace(
        "      annotations:\n", "      annotations:\n        sidecar.istio.io/inject: 'false'\n"
    )
    text = f.join(f.NAMESPACE, deployment, f.SERVICE, f.SIDECAR, f.NAMESPACE_STRICT, f.PORT_DISABLE)
    messages = of(run(text), "MSH0009")
    assert messages
    assert all("its pod template says sidecar.istio.io/inject=false" in m.text for m in messages)


def test_a_running_pod_without_its_proxy_is_named() -> None:
    pod = """\
apiVersion: v1
kind: Pod
metadata:
  name: httpbin-abc
  labels:
    app: httpbin
    version: v1
spec:
  containers:
  - name: httpbin
    image: docker.io/kennethreitz/httpbin
"""
    messages = of(
        run(f.join(f.SIDECAR, f.NAMESPACE_STRICT, f.PORT_DISABLE), live=f.join(f.NAMESPACE, pod)),
        "MSH0009",
    )
    assert messages
    assert all("the pod was created before injection was enabled" in m.text for m in messages)
    with_proxy = pod.replace(
        "  containers:\n", "  containers:\n  - name: istio-proxy\n    image: proxyv2\n"
    )
    assert (
        of(
            run(
                f.join(f.SIDECAR, f.NAMESPACE_STRICT, f.PORT_DISABLE),
                live=f.join(f.NAMESPACE, with_proxy),
            ),
            "MSH0009",
        )
        == []
    )


def test_port_names_follow_istios_rule() -> None:
    cases = {
        "name: http-web": False,
        "name: grpc-web-ui": False,
        "name: web\n    appProtocol: http": False,
        "name: http\n    appProtocol: web": True,  # appProtocol is read instead of the name
        "name: web\n    protocol: UDP": False,
        "name: web": True,
    }
    for spelled, fires in cases.items():
        service = f.SERVICE.replace("name: http\n", spelled + "\n")
        found = of(run(f.join(f.DEPLOYMENT, service)), "IST0118")
        assert bool(found) is fires, spelled
