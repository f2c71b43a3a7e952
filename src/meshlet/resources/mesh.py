"""Mesh-wide settings: what istiod reads from its mesh config and environment."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from meshlet.errors import UsageError

__all__ = ["MeshSettings"]

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}


@dataclass(frozen=True, slots=True)
class MeshSettings:
    """Trust domain, root namespace and pilot's feature flags (Istio's defaults)."""

    trust_domain: str = "cluster.local"
    root_namespace: str = "istio-system"
    enable_tls_on_sidecar_ingress: bool = False  # ENABLE_TLS_ON_SIDECAR_INGRESS
    profile: str = "default"

    def with_set_flags(self, flags: Iterable[str]) -> MeshSettings:
        """Apply ``--set NAME=VALUE`` flags as ``istioctl install`` reads them."""
        settings = self
        for flag in flags:
            name, sep, value = flag.partition("=")
            if not sep:
                raise UsageError(f'--set "{flag}": expected NAME=VALUE')
            match name.strip():
                case "profile":
                    if value not in {"default", "minimal", "demo", "empty"}:
                        raise UsageError(f'--set profile="{value}": unknown profile')
                    settings = replace(settings, profile=value)
                case "values.pilot.env.ENABLE_TLS_ON_SIDECAR_INGRESS":
                    settings = replace(
                        settings, enable_tls_on_sidecar_ingress=_parse_bool(flag, value)
                    )
                case "values.global.trustDomain" | "meshConfig.trustDomain":
                    if not value:
                        raise UsageError(f'--set "{flag}": the trust domain may not be empty')
                    settings = replace(settings, trust_domain=value)
                case "meshConfig.rootNamespace":
                    if not value:
                        raise UsageError(f'--set "{flag}": the root namespace may not be empty')
                    settings = replace(settings, root_namespace=value)
                case other:
                    raise UsageError(f'--set "{flag}": meshlet does not know the setting "{other}"')
        return settings


def _parse_bool(flag: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise UsageError(f'--set "{flag}": expected true or false')
