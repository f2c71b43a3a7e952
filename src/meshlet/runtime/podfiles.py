"""A pod's ``/etc/resolv.conf`` and ``/etc/hosts``, as kubelet writes them.

Pure: the text only. Every container of the pod gets these two files bind-mounted over
its own ``/etc/resolv.conf`` and ``/etc/hosts`` (``meshlet.runtime.container``); the
host's files are never touched.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address

__all__ = ["render_hosts", "render_resolv_conf", "search_domains"]


def search_domains(namespace: str, cluster_domain: str = "cluster.local") -> tuple[str, ...]:
    """The search path of a pod in ``namespace``: ``<ns>.svc.<domain> svc.<domain> <domain>``."""
    return (f"{namespace}.svc.{cluster_domain}", f"svc.{cluster_domain}", cluster_domain)


def render_resolv_conf(
    namespace: str, nameserver: IPv4Address, cluster_domain: str = "cluster.local"
) -> str:
    """The ``resolv.conf`` of a pod with ``dnsPolicy: ClusterFirst``."""
    return (
        f"search {' '.join(search_domains(namespace, cluster_domain))}\n"
        f"nameserver {nameserver}\n"
        "options ndots:5\n"
    )


def render_hosts(
    pod_ip: IPv4Address,
    hostname: str,
    *,
    subdomain_fqdn: str | None = None,
    host_aliases: Iterable[tuple[IPv4Address, Iterable[str]]] = (),
) -> str:
    """The ``hosts`` file of a pod: loopback, the IPv6 names, and the pod's own name."""
    lines = [
        "# Kubernetes-managed hosts file.",
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::0\tip6-localnet",
        "fe00::0\tip6-mcastprefix",
        "fe00::1\tip6-allnodes",
        "fe00::2\tip6-allrouters",
    ]
    own = f"{pod_ip}\t{subdomain_fqdn}\t{hostname}" if subdomain_fqdn else f"{pod_ip}\t{hostname}"
    lines.append(own)
    aliases = list(host_aliases)
    if aliases:
        lines.append("")
        lines.append("# Entries added by HostAliases.")
        for address, names in aliases:
            lines.append(f"{address}\t{chr(9).join(names)}")
    return "\n".join(lines) + "\n"
