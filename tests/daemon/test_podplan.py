from __future__ import annotations

import base64
from typing import Any

from meshlet.daemon.images import builtin_catalog
from meshlet.daemon.injection import inject
from meshlet.daemon.podplan import PodContext, plan_pod

CATALOG = builtin_catalog("/py")


def secret(name: str, **data: bytes) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
    }


def context(**overrides: Any) -> PodContext:
    values: dict[str, Any] = {
        "pod_dir": "/var/lib/meshlet/pods/u1",
        "pod_ip": "10.244.0.2",
        "host_ip": "10.244.0.1",
        "catalog": CATALOG,
        "secrets": {},
        "configmaps": {"istio-ca-root-cert": {"data": {"root-cert.pem": "ROOT"}}},
        "token": "TOKEN",
    }
    values.update(overrides)
    return PodContext(**values)


def sleep_pod(volume_source: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "sleep-1",
            "namespace": "default",
            "uid": "u1",
            "labels": {"app": "sleep"},
        },
        "spec": {
            "serviceAccountName": "sleep",
            "containers": [
                {
                    "name": "sleep",
                    "image": "curlimages/curl",
                    "command": ["/bin/sleep", "infinity"],
                    "env": [
                        {
                            "name": "MY_POD",
                            "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                        },
                        {"name": "MY_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                        {"name": "GREETING", "value": "hi-$(MY_POD)"},
                    ],
                    "volumeMounts": [{"name": "secret-volume", "mountPath": "/etc/sleep/tls"}],
                }
            ],
            "volumes": [
                {
                    "name": "secret-volume",
                    "secret": volume_source or {"secretName": "sleep-secret", "optional": True},
                }
            ],
        },
    }


def test_a_plain_pod_runs_its_command_with_its_environment_and_mounts() -> None:
    plan = plan_pod(sleep_pod(), context())
    (container,) = plan.containers
    assert container.argv == ("/bin/sleep", "infinity")
    env = dict(container.env)
    assert (
        env["MY_POD"] == "sleep-1"
        and env["MY_IP"] == "10.244.0.2"
        and env["GREETING"] == "hi-sleep-1"
    )
    assert env["HOSTNAME"] == "sleep-1" and "PATH" in env
    (mount,) = container.mounts
    assert mount.source == "/var/lib/meshlet/pods/u1/volumes/secret-volume"
    assert mount.target == "/etc/sleep/tls"
    assert container.waiting is None and not container.sidecar and container.gid == 0
    assert plan.volume_errors == ()
    assert plan.volumes[0].files == {}  # optional and missing: an empty volume


def test_a_missing_secret_that_is_not_optional_holds_the_pod() -> None:
    plan = plan_pod(sleep_pod({"secretName": "nope"}), context())
    assert plan.volume_errors == (
        'MountVolume.SetUp failed for volume "secret-volume" : secret "nope" not found',
    )


def test_secret_items_are_projected_to_their_paths() -> None:
    source = {"secretName": "tls", "items": [{"key": "tls.crt", "path": "certs/server.crt"}]}
    plan = plan_pod(
        sleep_pod(source),
        context(secrets={"tls": secret("tls", **{"tls.crt": b"C", "tls.key": b"K"})}),
    )
    assert plan.volumes[0].files == {"certs/server.crt": b"C"}


def test_an_unmapped_image_waits_with_err_image_pull() -> None:
    pod = sleep_pod()
    pod["spec"]["containers"][0]["image"] = "example.com/unknown:1"
    pod["spec"]["containers"][0].pop("command")
    (container,) = plan_pod(pod, context()).containers
    assert container.argv is None and container.waiting is not None
    assert container.waiting[0] == "ErrImagePull"


def test_a_missing_env_secret_is_a_config_error() -> None:
    pod = sleep_pod()
    pod["spec"]["containers"][0]["env"].append(
        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}
    )
    (container,) = plan_pod(pod, context()).containers
    assert container.waiting == ("CreateContainerConfigError", 'secret "db" not found')
    found = plan_pod(pod, context(secrets={"db": secret("db", password=b"s3cret")})).containers[0]
    assert dict(found.env)["PASSWORD"] == "s3cret" and found.waiting is None


def test_an_injected_pod_runs_the_sidecar_with_its_files() -> None:
    annotations = {
        "sidecar.istio.io/userVolume": '{"tls-secret":{"secret":{"secretName":"tls","optional":true}}}',
        "sidecar.istio.io/userVolumeMount": '{"tls-secret":{"mountPath":"/etc/istio/tls-certs/","readOnly":true}}',
    }
    pod = sleep_pod()
    pod["metadata"]["annotations"] = annotations
    plan = plan_pod(inject(pod), context(secrets={"tls": secret("tls", **{"tls.crt": b"C"})}))
    app, proxy = plan.containers
    assert proxy.sidecar and proxy.gid == 1337
    assert proxy.argv is not None and proxy.argv[:3] == ("/py", "-m", "meshlet.proxy.sidecar")
    assert "sleep-1" in proxy.argv and "10.244.0.2" in proxy.argv and "sleep" in proxy.argv
    assert proxy.probe is not None and (proxy.probe.kind, proxy.probe.port, proxy.probe.path) == (
        "http",
        15021,
        "/healthz/ready",
    )
    targets = {m.target: m for m in proxy.mounts}
    assert targets["/etc/istio/tls-certs"].read_only
    assert "/etc/istio/tls-certs" not in {m.target for m in app.mounts}
    volumes = {v.name: v.files for v in plan.volumes}
    assert volumes["istio-token"] == {"istio-token": b"TOKEN"}
    assert volumes["istiod-ca-cert"] == {"root-cert.pem": b"ROOT"}
    assert volumes["tls-secret"] == {"tls.crt": b"C"}
    assert volumes["workload-socket"] is None  # an emptyDir
    assert b'app="sleep"' in (volumes["istio-podinfo"] or {})["labels"]
