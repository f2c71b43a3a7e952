from __future__ import annotations

from meshlet.daemon.controllers.namespaces import (
    ROOT_CERT_CONFIGMAP,
    contents_of,
    namespace_objects,
    root_cert_configmap,
)
from meshlet.store import ObjectKey


def test_a_new_namespace_gets_the_root_and_the_default_account() -> None:
    wanted = namespace_objects("test", root_pem="ROOT", configmap=None, service_account=None)
    keys = [key for key, _ in wanted]
    assert keys == [
        ObjectKey("/ServiceAccount", "test", "default"),
        ObjectKey("/ConfigMap", "test", ROOT_CERT_CONFIGMAP),
    ]
    assert wanted[1][1]["data"] == {"root-cert.pem": "ROOT"}


def test_nothing_to_do_when_it_holds_them_and_a_drifted_root_is_rewritten() -> None:
    configmap = root_cert_configmap("test", "ROOT")
    account = {"metadata": {"name": "default"}}
    assert (
        namespace_objects("test", root_pem="ROOT", configmap=configmap, service_account=account)
        == []
    )
    drifted = {**configmap, "data": {"root-cert.pem": "OLD"}}
    (fix,) = namespace_objects("test", root_pem="ROOT", configmap=drifted, service_account=account)
    assert fix[1]["data"] == {"root-cert.pem": "ROOT"}


def test_contents_of_a_namespace_pods_last_then_the_namespace() -> None:
    keys = [
        ObjectKey("/Pod", "test", "p"),
        ObjectKey("apps/Deployment", "test", "d"),
        ObjectKey("/Service", "other", "s"),
        ObjectKey("/Service", "test", "s"),
    ]
    assert contents_of("test", keys) == [
        ObjectKey("/Service", "test", "s"),
        ObjectKey("apps/Deployment", "test", "d"),
        ObjectKey("/Pod", "test", "p"),
        ObjectKey("/Namespace", "", "test"),
    ]
