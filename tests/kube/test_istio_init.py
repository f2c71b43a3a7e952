"""The istio-init container's flags give the capture rules the pod's annotations ask for."""

from __future__ import annotations

from meshlet.daemon.injection import inject
from meshlet.kube.istio_init import main, rules_for
from meshlet.kube.settings import kube_settings_from_flags
from meshlet.runtime.capture import capture_config_from_annotations, render_capture_table


def test_the_init_container_writes_the_rules_of_the_pods_annotations(capsys) -> None:  # type: ignore[no-untyped-def]
    annotations = {
        "traffic.sidecar.istio.io/excludeOutboundPorts": "5432",
        "traffic.sidecar.istio.io/excludeOutboundIPRanges": "10.0.0.1/32",
    }
    pod = {
        "metadata": {"name": "app", "namespace": "test", "annotations": dict(annotations)},
        "spec": {"containers": [{"name": "app", "image": "app"}]},
    }
    injected = inject(pod, kube_settings_from_flags([]).injection())
    (init,) = injected["spec"]["initContainers"]
    assert init["name"] == "istio-init"
    assert init["command"] == ["python", "-m", "meshlet.kube.istio_init"]
    assert set(init["securityContext"]["capabilities"]["add"]) == {"NET_ADMIN", "NET_RAW"}
    expected = render_capture_table(capture_config_from_annotations(annotations))
    assert rules_for(init["args"]) == expected
    assert "-A ISTIO_OUTPUT -p tcp -m tcp --dport 5432 -j RETURN" in expected
    assert main([*init["args"], "--dry-run"]) == 0
    assert capsys.readouterr().out == expected


def test_a_bad_annotation_is_refused_at_injection() -> None:
    import pytest

    from meshlet.errors import ConfigError

    pod = {
        "metadata": {
            "name": "app",
            "annotations": {"traffic.sidecar.istio.io/excludeOutboundPorts": "http"},
        },
        "spec": {"containers": [{"name": "app", "image": "app"}]},
    }
    with pytest.raises(ConfigError, match="injection failed"):
        inject(pod, kube_settings_from_flags([]).injection())
