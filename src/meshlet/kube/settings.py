"""What a cluster install is told with ``--set``: the mesh settings and the image.

On one host the sidecar's image is only a name the local runtime maps to a program;
in a cluster it is a real container image, the one meshlet's ``Dockerfile`` builds
(one image for the control plane and the sidecar). Its name is istioctl's
``values.global.hub`` and ``values.global.tag`` (``HUB/meshlet:TAG``); the other
``--set`` flags are the mesh settings the local install reads too
(``MeshSettings.with_set_flags``). Pure.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from meshlet import __version__
from meshlet.daemon.injection import InjectionSettings
from meshlet.errors import UsageError
from meshlet.resources.mesh import MeshSettings

__all__ = [
    "CA_PORT",
    "CONTROL_PLANE_NAME",
    "DEFAULT_HUB",
    "MONITORING_PORT",
    "WEBHOOK_PORT",
    "XDS_PORT",
    "KubeSettings",
    "kube_settings_from_flags",
]

DEFAULT_HUB = "docker.io/meshlet"
CONTROL_PLANE_NAME = "istiod"
XDS_PORT = 15010
CA_PORT = 15012
MONITORING_PORT = 15014
WEBHOOK_PORT = 15017


@dataclass(frozen=True, slots=True)
class KubeSettings:
    """A cluster install: the mesh settings and the image of the control plane and sidecar."""

    mesh: MeshSettings = field(default_factory=MeshSettings)
    hub: str = DEFAULT_HUB
    tag: str = __version__

    @property
    def namespace(self) -> str:
        """The control plane's namespace (Istio's root namespace, ``istio-system``)."""
        return self.mesh.root_namespace

    @property
    def image(self) -> str:
        return f"{self.hub}/meshlet:{self.tag}"

    @property
    def service_host(self) -> str:
        return f"{CONTROL_PLANE_NAME}.{self.namespace}.svc"

    def injection(self) -> InjectionSettings:
        """What the webhook and ``kube-inject`` write into every sidecar."""
        return InjectionSettings(
            image=self.image,
            xds_address=f"{self.service_host}:{CA_PORT}",  # xDS and the CA share 15012 (TLS)
            ca_address=f"{self.service_host}:{CA_PORT}",
            trust_domain=self.mesh.trust_domain,
            root_namespace=self.namespace,
            capture_init=True,
        )


def kube_settings_from_flags(flags: Iterable[str]) -> KubeSettings:
    """``--set NAME=VALUE`` flags: ``values.global.hub`` and ``values.global.tag`` here,
    every other one as the mesh settings read it."""
    hub, tag = DEFAULT_HUB, __version__
    mesh_flags: list[str] = []
    for flag in flags:
        name, sep, value = flag.partition("=")
        match name.strip():
            case "values.global.hub" if sep:
                if not value.strip() or value.endswith("/"):
                    raise UsageError(
                        f'--set "{flag}": expected a registry path such as docker.io/me'
                    )
                hub = value.strip()
            case "values.global.tag" if sep:
                if not value.strip() or any(c in value for c in "/:@ "):
                    raise UsageError(f'--set "{flag}": expected an image tag such as 0.1.0')
                tag = value.strip()
            case _:
                mesh_flags.append(flag)
    mesh = MeshSettings().with_set_flags(mesh_flags)
    return KubeSettings(mesh=mesh, hub=hub, tag=tag)
