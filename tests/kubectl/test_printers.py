"""get's output: kubectl's columns and layout, and the scenario's exact tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from meshlet.kubectl.messages import KubectlError
from meshlet.kubectl.names import resolve_type
from meshlet.kubectl.printers import (
    OutputKind,
    parse_output_format,
    print_get,
    render_table,
    table_columns,
    tabwrite,
)
from tests.kubectl.conftest import NOW, recorded, stamp


def pod(
    name: str,
    *,
    namespace: str = "default",
    containers: int = 1,
    ready: int | None = None,
    age: float = 60,
    restarts: int = 0,
    finished: float | None = None,
    ip: str = "10.42.0.7",
) -> dict[str, Any]:
    ready = containers if ready is None else ready
    statuses = []
    for index in range(containers):
        status: dict[str, Any] = {
            "name": f"c{index}",
            "ready": index < ready,
            "restartCount": restarts if index == 0 else 0,
            "state": {"running": {"startedAt": stamp(age)}}
            if index < ready
            else {"waiting": {"reason": "ContainerCreating"}},
        }
        if finished is not None and index == 0:
            status["lastState"] = {"terminated": {"exitCode": 1, "finishedAt": stamp(finished)}}
        statuses.append(status)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": stamp(age)},
        "spec": {"containers": [{"name": f"c{i}", "image": "img"} for i in range(containers)]},
        "status": {
            "phase": "Running",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "conditions": [{"type": "Ready", "status": "True" if ready == containers else "False"}],
            "containerStatuses": statuses,
        },
    }


def service(name: str, ports: list[int], cluster_ip: str, age: float) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "test", "creationTimestamp": stamp(age)},
        "spec": {
            "type": "ClusterIP",
            "clusterIP": cluster_ip,
            "clusterIPs": [cluster_ip],
            "ports": [{"port": p, "protocol": "TCP"} for p in ports],
            "selector": {"app": name},
        },
    }


def get(kind: str, objects: list[dict[str, Any]], output: str | None = None, **kw: Any) -> str:
    printed = print_get(
        resolve_type(kind),
        objects,
        output=parse_output_format(output),
        now=NOW,
        namespace=kw.pop("namespace", "test"),
        **kw,
    )
    assert printed.stderr == ""
    return printed.stdout


# --- the reference scenario, step 7 and 8 --------------------------------------------


def test_scenario_get_pods_in_default() -> None:
    assert get("pods", [pod("sleep-557747455f-xx88g", age=254)], namespace="default") == (
        "NAME                     READY   STATUS    RESTARTS   AGE\n"
        "sleep-557747455f-xx88g   1/1     Running   0          4m14s\n"
    )


def test_scenario_get_pods_in_test() -> None:
    pods = [
        pod("httpbin-5bbdbd6588-z9vbs", namespace="test", containers=2, age=524),
        pod("sleep-557747455f-brzf6", namespace="test", containers=2, age=417),
    ]
    assert get("pods", pods) == (
        "NAME                       READY   STATUS    RESTARTS   AGE\n"
        "httpbin-5bbdbd6588-z9vbs   2/2     Running   0          8m44s\n"
        "sleep-557747455f-brzf6     2/2     Running   0          6m57s\n"
    )


def test_scenario_get_svc() -> None:
    services = [
        service("httpbin", [8443, 8080], "10.100.78.113", 600),
        service("sleep", [80], "10.110.35.153", 529),
    ]
    assert get("svc", services) == (
        "NAME      TYPE        CLUSTER-IP      EXTERNAL-IP   PORT(S)             AGE\n"
        "httpbin   ClusterIP   10.100.78.113   <none>        8443/TCP,8080/TCP   10m\n"
        "sleep     ClusterIP   10.110.35.153   <none>        80/TCP              8m49s\n"
    )


def test_scenario_jsonpath_of_a_selected_pod() -> None:
    sleep = pod("sleep-557747455f-brzf6", namespace="test")
    assert get("pod", [sleep], "jsonpath={.items..metadata.name}") == "sleep-557747455f-brzf6"


# --- tables ---------------------------------------------------------------------------


def test_wide_and_all_namespaces() -> None:
    pods = [pod("a", namespace="default", ip="10.42.0.2"), pod("b", namespace="test", ready=0)]
    assert get("po", pods, "wide", all_namespaces=True) == (
        "NAMESPACE   NAME   READY   STATUS              RESTARTS   AGE   IP          NODE     NOMINATED NODE   READINESS GATES\n"
        "default     a      1/1     Running             0          60s   10.42.0.2   <none>   <none>           <none>\n"
        "test        b      0/1     ContainerCreating   0          60s   10.42.0.7   <none>   <none>           <none>\n"
    )


@pytest.mark.parametrize(
    ("overrides", "ready", "status", "restarts"),
    [
        ({}, "1/1", "Running", "0"),
        ({"restarts": 3, "finished": 125}, "1/1", "Running", "3 (2m5s ago)"),
        ({"restarts": 2}, "1/1", "Running", "2"),  # no finish time known
        ({"containers": 2, "ready": 1}, "1/2", "ContainerCreating", "0"),
    ],
)
def test_pod_status_columns(
    overrides: dict[str, Any], ready: str, status: str, restarts: str
) -> None:
    table = get("po", [pod("p", **overrides)])
    cells = table.splitlines()[1].split()
    assert cells[1] == ready
    assert cells[2] == status
    assert " ".join(cells[3:-1]) == restarts


def test_pod_status_reasons() -> None:
    crashing = pod("p")
    crashing["status"]["containerStatuses"][0]["state"] = {
        "waiting": {"reason": "CrashLoopBackOff"}
    }
    crashing["status"]["containerStatuses"][0]["ready"] = False
    assert get("po", [crashing]).splitlines()[1].split()[1:3] == ["0/1", "CrashLoopBackOff"]
    killed = pod("p")
    killed["status"]["containerStatuses"][0]["state"] = {
        "terminated": {"exitCode": 137, "signal": 9}
    }
    assert get("po", [killed]).splitlines()[1].split()[2] == "Signal:9"
    failed = pod("p")
    failed["status"]["containerStatuses"][0]["state"] = {"terminated": {"exitCode": 2}}
    assert get("po", [failed]).splitlines()[1].split()[2] == "ExitCode:2"
    leaving = pod("p")
    leaving["metadata"]["deletionTimestamp"] = stamp(1)
    assert get("po", [leaving]).splitlines()[1].split()[2] == "Terminating"
    init = pod("p")
    init["spec"]["initContainers"] = [{"name": "istio-init"}]
    init["status"]["initContainerStatuses"] = [{"name": "istio-init", "state": {"running": {}}}]
    init["status"]["containerStatuses"] = []
    assert get("po", [init]).splitlines()[1].split()[1:3] == ["0/1", "Init:0/1"]
    sidecar = pod("p")
    sidecar["spec"]["initContainers"] = [{"name": "istio-proxy", "restartPolicy": "Always"}]
    sidecar["status"]["initContainerStatuses"] = [
        {"name": "istio-proxy", "started": True, "ready": True, "state": {"running": {}}}
    ]
    sidecar["status"]["conditions"].append({"type": "Initialized", "status": "True"})
    assert get("po", [sidecar]).splitlines()[1].split()[1:3] == ["2/2", "Running"]


def test_recorded_pending_pods(api_schemas: Path) -> None:
    pods = recorded(api_schemas, "list-pods-test.json")["items"]
    now = NOW.replace(year=2026, month=11, day=29, hour=15, minute=40)
    text = render_table(resolve_type("pods"), pods, now=now)
    lines = text.splitlines()
    assert lines[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    for line in lines[1:]:
        assert line.split()[1:4] == ["0/1", "Pending", "0"]


def test_recorded_service(api_schemas: Path) -> None:
    services = recorded(api_schemas, "list-services-test.json")["items"]
    line = render_table(resolve_type("svc"), services, now=NOW, wide=True).splitlines()[1]
    assert line.split()[1:5] == ["ClusterIP", "10.96.156.143", "<none>", "8443/TCP,8080/TCP"]
    assert line.split()[-1] == "app=httpbin"


@pytest.mark.parametrize(
    ("kind", "obj", "header", "row"),
    [
        (
            "deploy",
            {
                "metadata": {"name": "httpbin", "creationTimestamp": stamp(30)},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": {"version": "v1", "app": "httpbin"}},
                    "template": {
                        "spec": {
                            "containers": [
                                {"name": "httpbin", "image": "docker.io/kennethreitz/httpbin"}
                            ]
                        }
                    },
                },
                "status": {"readyReplicas": 1, "updatedReplicas": 1, "availableReplicas": 1},
            },
            "NAME      READY   UP-TO-DATE   AVAILABLE   AGE",
            "httpbin   1/1     1            1           30s",
        ),
        (
            "secret",
            {
                "metadata": {"name": "httpbin-mtls-termination", "creationTimestamp": stamp(7200)},
                "type": "kubernetes.io/tls",
                "data": {"tls.crt": "", "tls.key": ""},
            },
            "NAME                       TYPE                DATA   AGE",
            "httpbin-mtls-termination   kubernetes.io/tls   2      120m",
        ),
        (
            "ns",
            {
                "metadata": {"name": "test", "creationTimestamp": stamp(3 * 86400)},
                "status": {"phase": "Active"},
            },
            "NAME   STATUS   AGE",
            "test   Active   3d",
        ),
        (
            "sa",
            {"metadata": {"name": "httpbin", "creationTimestamp": stamp(5)}},
            "NAME      SECRETS   AGE",
            "httpbin   0         5s",
        ),
        (
            "cm",
            {
                "metadata": {"name": "istio-ca-root-cert", "creationTimestamp": stamp(5)},
                "data": {"root-cert.pem": "x"},
            },
            "NAME                 DATA   AGE",
            "istio-ca-root-cert   1      5s",
        ),
        (
            "pa",
            {
                "metadata": {"name": "default", "creationTimestamp": stamp(60)},
                "spec": {"mtls": {"mode": "STRICT"}},
            },
            "NAME      MODE     AGE",
            "default   STRICT   60s",
        ),
        (
            "pa",
            {"metadata": {"name": "no-mode", "creationTimestamp": stamp(60)}, "spec": {}},
            "NAME      MODE   AGE",
            "no-mode          60s",
        ),
        (
            "dr",
            {
                "metadata": {"name": "httpbin", "creationTimestamp": stamp(60)},
                "spec": {"host": "httpbin.test.svc.cluster.local"},
            },
            "NAME      HOST                             AGE",
            "httpbin   httpbin.test.svc.cluster.local   60s",
        ),
        (
            "sidecar",
            {"metadata": {"name": "ingress-sidecar", "creationTimestamp": stamp(60)}, "spec": {}},
            "NAME              AGE",
            "ingress-sidecar   60s",
        ),
    ],
)
def test_kind_tables(kind: str, obj: dict[str, Any], header: str, row: str) -> None:
    assert get(kind, [obj]) == f"{header}\n{row}\n"


def test_deployment_wide_selector() -> None:
    obj = {
        "metadata": {"name": "httpbin"},
        "spec": {
            "selector": {
                "matchLabels": {"version": "v1", "app": "httpbin"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]}],
            },
            "template": {
                "spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}
            },
        },
    }
    row = get("deploy", [obj], "wide").splitlines()[1].split()
    assert row[5:] == ["a,b", "x,y", "app=httpbin,tier", "in", "(a,b),version=v1"]


def test_crd_columns_follow_istios_crds(api_schemas: Path) -> None:
    """Each Istio kind's columns are the CRD's additionalPrinterColumns (or NAME AGE)."""
    for crd in yaml.safe_load_all((api_schemas / "istio-crds.yaml").read_text()):
        if not crd:
            continue
        kind = crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            printed = version.get("additionalPrinterColumns") or [{"name": "Age"}]
            expected = ["Name", *(c["name"] for c in printed)]
            assert [c.name for c in table_columns(resolve_type(kind))] == expected, kind
            priorities = [c.get("priority", 0) for c in printed]
            assert [c.priority for c in table_columns(resolve_type(kind))][1:] == priorities


def test_cells_with_line_breaks_are_cut() -> None:
    obj = {"metadata": {"name": "x", "creationTimestamp": stamp(1)}, "spec": {"host": "a\nb"}}
    assert get("dr", [obj]).splitlines()[1].split()[1] == "a..."


def test_tabwriter_minimum_width_and_padding() -> None:
    assert tabwrite([["A", "B", "C"], ["x", "yy", "z"]]) == "A     B     C\nx     yy    z\n"
    assert tabwrite([["NAME", "AGE"], ["a-much-longer-name", "1s"]]) == (
        "NAME                 AGE\na-much-longer-name   1s\n"
    )


def test_several_kinds_prefix_names() -> None:
    text = render_table(
        resolve_type("svc"), [service("httpbin", [80], "10.0.0.1", 1)], now=NOW, with_kind=True
    )
    assert text.splitlines()[1].startswith("service/httpbin   ")


# --- empty lists and other formats -------------------------------------------------


def test_no_resources_found_goes_to_stderr() -> None:
    info = resolve_type("pods")
    table = parse_output_format(None)
    assert print_get(info, [], output=table, now=NOW, namespace="test").stderr == (
        "No resources found in test namespace.\n"
    )
    all_ns = print_get(info, [], output=table, now=NOW, namespace="test", all_namespaces=True)
    assert (all_ns.stdout, all_ns.stderr) == ("", "No resources found\n")
    cluster = print_get(resolve_type("ns"), [], output=table, now=NOW, namespace="test")
    assert cluster.stderr == "No resources found\n"
    as_yaml = print_get(info, [], output=parse_output_format("yaml"), now=NOW, namespace="test")
    assert (as_yaml.stdout, as_yaml.stderr) == (
        'apiVersion: v1\nitems: []\nkind: List\nmetadata:\n  resourceVersion: ""\n',
        "",
    )


def test_names() -> None:
    pods = [pod("sleep-557747455f-brzf6"), pod("httpbin-5bbdbd6588-z9vbs")]
    assert get("pods", pods, "name") == "pod/sleep-557747455f-brzf6\npod/httpbin-5bbdbd6588-z9vbs\n"
    deployment = {"metadata": {"name": "httpbin"}}
    assert get("deploy", [deployment], "name") == "deployment.apps/httpbin\n"


def test_yaml_and_json_of_one_object_and_of_a_list() -> None:
    obj = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "httpbin", "namespace": "test"},
    }
    single = "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: httpbin\n  namespace: test\n"
    assert get("sa", [obj], "yaml", single_item=True) == single
    assert get("sa", [obj], "yaml") == (
        "apiVersion: v1\n"
        "items:\n"
        "- apiVersion: v1\n"
        "  kind: ServiceAccount\n"
        "  metadata:\n"
        "    name: httpbin\n"
        "    namespace: test\n"
        "kind: List\n"
        "metadata:\n"
        '  resourceVersion: ""\n'
    )
    assert get("sa", [obj], "json", single_item=True) == (
        "{\n"
        '    "apiVersion": "v1",\n'
        '    "kind": "ServiceAccount",\n'
        '    "metadata": {\n'
        '        "name": "httpbin",\n'
        '        "namespace": "test"\n'
        "    }\n"
        "}\n"
    )
    assert get("sa", [obj], "jsonpath={.metadata.name}", single_item=True) == "httpbin"


@pytest.mark.parametrize(
    ("spec", "kind"),
    [
        (None, OutputKind.TABLE),
        ("wide", OutputKind.WIDE),
        ("yaml", OutputKind.YAML),
        ("json", OutputKind.JSON),
        ("name", OutputKind.NAME),
        ("jsonpath={.a}", OutputKind.JSONPATH),
    ],
)
def test_output_formats(spec: str | None, kind: OutputKind) -> None:
    assert parse_output_format(spec).kind is kind


@pytest.mark.parametrize(
    ("spec", "line"),
    [
        (
            "xml",
            'error: unable to match a printer suitable for the output format "xml", allowed formats are: json,jsonpath,name,wide,yaml',
        ),
        ("jsonpath=", "error: template format specified but no template given"),
        ("jsonpath={.x", "error: error parsing jsonpath {.x, unclosed action"),
    ],
)
def test_bad_output_formats(spec: str, line: str) -> None:
    with pytest.raises(KubectlError) as caught:
        parse_output_format(spec)
    assert caught.value.line == line
