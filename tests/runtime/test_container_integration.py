"""Containers (their own mount namespace in the pod's network namespace) and the
cluster DNS, on real namespaces (root only)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path

import pytest

from meshlet.runtime.container import (
    container_mounts,
    copy_from_container,
    copy_into_container,
    exec_in_container,
    start_container,
    write_secret_volume,
)
from meshlet.runtime.containerspec import ContainerSpec, Mount
from meshlet.runtime.dns import ClusterDns, NameTable
from meshlet.runtime.dnsmsg import service_names
from meshlet.runtime.network import NodeNetwork, PodNetwork
from meshlet.runtime.podfiles import render_hosts, render_resolv_conf

from .conftest import Processes

pytestmark = pytest.mark.integration

HOST_FILES = ("/etc/hosts", "/etc/resolv.conf")


def pod_files(node: NodeNetwork, pod: PodNetwork, root: Path, namespace: str) -> tuple[Path, Path]:
    root.mkdir(parents=True, exist_ok=True)
    resolv = root / "resolv.conf"
    hosts = root / "hosts"
    resolv.write_text(render_resolv_conf(namespace, node.config.dns_ip))
    hosts.write_text(render_hosts(pod.ip, pod.pod_id))
    return resolv, hosts


def start(
    processes: Processes,
    node: NodeNetwork,
    pod: PodNetwork,
    directory: Path,
    argv: list[str],
    *,
    namespace: str = "test",
    gid: int = 0,
    volumes: tuple[Mount, ...] = (),
) -> subprocess.Popen[str]:
    resolv, hosts = pod_files(node, pod, directory / "pod", namespace)
    scratch, mounts = container_mounts(
        directory / "container", resolv_conf=resolv, hosts=hosts, volumes=volumes
    )
    spec = ContainerSpec.build(
        argv,
        netns=str(pod.netns_path),
        scratch_dir=str(scratch),
        env={"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "POD_NAME": pod.pod_id},
        gid=gid,
        mounts=mounts,
    )
    process = start_container(
        spec,
        directory / "spec.json",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    # start_container gives bytes pipes; the tracker only needs the PID to stop it
    return processes.add(process)  # type: ignore[arg-type]


def wait_started(process: subprocess.Popen[str], path: str = "/proc/self") -> None:
    """Wait until the entry program has exec'd the command (its mounts are in place)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            _, err = process.communicate()
            raise AssertionError(f"container exited {process.returncode}: {err!r}")
        cmdline = Path(f"/proc/{process.pid}/cmdline").read_bytes()
        # Right after the fork the child is still a copy of this process (same cmdline
        # as ours, same mount namespace): wait for the entry program to have exec'd the
        # command, inside the container's own mount namespace.
        own_mounts = os.stat(f"/proc/{process.pid}/ns/mnt").st_ino
        if (
            b"meshlet.runtime.enter" not in cmdline
            and cmdline != Path("/proc/self/cmdline").read_bytes()
            and own_mounts != os.stat("/proc/self/ns/mnt").st_ino
        ):
            return
        time.sleep(0.02)
    raise AssertionError("container did not start within 10s")


def exec_output(pid: int, argv: list[str]) -> tuple[int, str]:
    read, write = os.pipe()
    with os.fdopen(read, "rb") as reader:
        with os.fdopen(write, "wb") as writer:
            code = exec_in_container(pid, argv, stdout=writer, stderr=writer, timeout=20)
        return code, reader.read().decode()


def test_containers_see_their_own_volumes_and_the_host_is_untouched(node, processes, tmp_path):
    host_before = {path: Path(path).read_bytes() for path in HOST_FILES}
    assert not Path("/etc/istio").exists()
    pod1 = node.add_pod("vol-one")
    pod2 = node.add_pod("vol-two")
    certs1, certs2 = tmp_path / "certs1", tmp_path / "certs2"
    write_secret_volume(certs1, {"tls.crt": b"cert of one\n", "tls.key": b"key one\n"})
    write_secret_volume(certs2, {"tls.crt": b"cert of two\n", "tls.key": b"key two\n"})
    target = "/etc/istio/tls-certs"
    proxy1 = start(
        processes, node, pod1, tmp_path / "c1", ["sleep", "60"], gid=1337,
        volumes=(Mount(str(certs1), target, read_only=True),),
    )  # fmt: skip
    proxy2 = start(
        processes, node, pod2, tmp_path / "c2", ["sleep", "60"], gid=1337,
        volumes=(Mount(str(certs2), target, read_only=True),),
    )  # fmt: skip
    app1 = start(processes, node, pod1, tmp_path / "a1", ["sleep", "60"])
    for process in (proxy1, proxy2, app1):
        wait_started(process)

    assert exec_output(proxy1.pid, ["cat", f"{target}/tls.crt"]) == (0, "cert of one\n")
    assert exec_output(proxy2.pid, ["cat", f"{target}/tls.crt"]) == (0, "cert of two\n")
    code, _ = exec_output(app1.pid, ["test", "-e", "/etc/istio"])
    assert code == 1  # the app container of the same pod does not see the sidecar's volume
    # read-only, as kubelet mounts secrets
    code, _ = exec_output(proxy1.pid, ["sh", "-c", f"echo x > {target}/new"])
    assert code != 0
    # an update of the secret (the ..data swap) is seen through the mounted directory
    write_secret_volume(certs1, {"tls.crt": b"rotated\n", "tls.key": b"key one\n"})
    assert exec_output(proxy1.pid, ["cat", f"{target}/tls.crt"]) == (0, "rotated\n")

    # each container is in its pod's network namespace, with the pod's resolv.conf/hosts
    for process, pod in ((proxy1, pod1), (app1, pod1), (proxy2, pod2)):
        assert os.stat(f"/proc/{process.pid}/ns/net").st_ino == os.stat(pod.netns_path).st_ino
        assert os.stat(f"/proc/{process.pid}/ns/mnt").st_ino != os.stat("/proc/self/ns/mnt").st_ino
    code, resolv = exec_output(app1.pid, ["cat", "/etc/resolv.conf"])
    assert resolv == render_resolv_conf("test", node.config.dns_ip)
    code, hosts = exec_output(proxy2.pid, ["cat", "/etc/hosts"])
    assert hosts.splitlines()[-1] == f"{pod2.ip}\tvol-two"

    # gid 1337 for the proxy, 0 for the app; exec runs as the container does
    assert exec_output(proxy1.pid, ["id", "-g"]) == (0, "1337\n")
    assert exec_output(app1.pid, ["id", "-g"]) == (0, "0\n")
    assert exec_output(app1.pid, ["sh", "-c", "echo $POD_NAME"]) == (0, "vol-one\n")
    # exit codes pass through; a missing command is 127
    assert exec_output(app1.pid, ["sh", "-c", "exit 7"])[0] == 7
    assert exec_output(app1.pid, ["no-such-command-here"])[0] == 127

    # the host saw none of it
    assert {path: Path(path).read_bytes() for path in HOST_FILES} == host_before
    assert not Path("/etc/istio").exists()


def test_tmp_is_private_to_each_container(node, processes, tmp_path):
    pod1 = node.add_pod("tmp-one")
    pod2 = node.add_pod("tmp-two")
    one = start(processes, node, pod1, tmp_path / "one", ["sleep", "60"])
    two = start(processes, node, pod2, tmp_path / "two", ["sleep", "60"])
    sibling = start(processes, node, pod1, tmp_path / "sib", ["sleep", "60"])
    for process in (one, two, sibling):
        wait_started(process)
    name = f"meshlet-cp-{os.getpid()}-{tmp_path.name}"
    source = tmp_path / name
    source.write_text("copied in\n")
    assert copy_into_container(one.pid, source, "/tmp") == f"/tmp/{name}"
    assert exec_output(one.pid, ["cat", f"/tmp/{name}"]) == (0, "copied in\n")
    assert exec_output(one.pid, ["sh", "-c", f"echo written inside > /tmp/{name}.inside"])[0] == 0
    for other in (two, sibling):
        assert exec_output(other.pid, ["test", "-e", f"/tmp/{name}"])[0] == 1
        assert exec_output(other.pid, ["test", "-e", f"/tmp/{name}.inside"])[0] == 1
    assert not Path(f"/tmp/{name}").exists()
    assert not Path(f"/tmp/{name}.inside").exists()
    back = copy_from_container(one.pid, f"/tmp/{name}.inside", tmp_path)
    assert back.read_text() == "written inside\n"


def test_a_container_setup_failure_is_one_line(node, processes, tmp_path):
    pod = node.add_pod("bad-mount")
    (tmp_path / "certs").mkdir()
    process = start(
        processes, node, pod, tmp_path / "bad", ["true"],
        volumes=(Mount(str(tmp_path / "certs"), "/no-such-top-dir/certs"),),
    )  # fmt: skip
    _, err = process.communicate(timeout=10)
    assert process.returncode == 125
    assert err.decode() == (
        "meshlet: container setup failed: cannot make /no-such-top-dir/certs: "
        "its first directory does not exist on the host\n"
    )
    assert not Path("/no-such-top-dir").exists()
    missing = start(processes, node, pod, tmp_path / "missing", ["no-such-program"])
    _, err = missing.communicate(timeout=10)
    assert (missing.returncode, err.decode()) == (
        127,
        "meshlet: no-such-program: command not found\n",
    )


async def test_cluster_dns_answers_pods_at_once(node, processes, tmp_path):
    pod = node.add_pod("dns-client")
    vip = node.config.service_cidr.network_address + 30
    table = NameTable(service_names([("httpbin", "test", vip)]))

    async def getent(name: str) -> tuple[int, str, float]:
        directory = tmp_path / f"getent-{name}"
        process = start(processes, node, pod, directory, ["getent", "hosts", name])
        began = time.monotonic()
        out, err = await asyncio.to_thread(process.communicate, timeout=15)
        return process.returncode, out.decode() + err.decode(), time.monotonic() - began

    async with ClusterDns(table) as dns:
        await dns.start(node.config.dns_ip, 53, netns=node.node_netns_path)
        assert dns.addresses[0] == (str(node.config.dns_ip), 53)
        for name in ("httpbin.test.svc.cluster.local", "httpbin.test", "httpbin"):
            code, out, _ = await getent(name)
            assert code == 0, out
            assert out.split()[0] == str(vip), out
        code, out, elapsed = await getent("nothere.test.svc.cluster.local")
        assert code == 2, out
        assert elapsed < 2.0  # NXDOMAIN at once: a silent drop would cost seconds
        # a Service added later is answered from the replaced table
        table.replace(service_names([("httpbin", "test", vip), ("later", "test", vip + 1)]))
        code, out, _ = await getent("later")
        assert (code, out.split()[0]) == (0, str(vip + 1))


@pytest.fixture
def var_lib_dir():
    """A container directory under /var/lib, as a MESHLET_HOME of /var/lib/meshlet gives."""
    directory = Path(f"/var/lib/meshlet-test-{os.getpid()}-{time.monotonic_ns()}")
    directory.mkdir(parents=True)
    yield directory
    subprocess.run(["rm", "-rf", str(directory)], check=False)


def test_a_mount_path_under_the_folder_of_the_container_directory(
    node, processes, tmp_path, var_lib_dir
):
    """The container's own scratch directory lies below the folder an overlay is made of
    (``/var/lib``, for a mountPath such as ``/var/lib/istio/data``): the overlay must
    neither hide the scratch space nor move it into itself."""
    pod = node.add_pod("var-lib")
    data = tmp_path / "data"
    write_secret_volume(data, {"token": b"a token\n"})
    target = f"/var/lib/{var_lib_dir.name}-istio/data"
    proxy = start(
        processes, node, pod, var_lib_dir / "c", ["sleep", "60"], gid=1337,
        volumes=(
            Mount(str(data), target, read_only=True),
            Mount(str(data), f"/var/lib/{var_lib_dir.name}-other/more", read_only=True),
        ),
    )  # fmt: skip
    wait_started(proxy)
    assert exec_output(proxy.pid, ["cat", f"{target}/token"]) == (0, "a token\n")
    assert not Path(target).exists()  # nothing made on the host
