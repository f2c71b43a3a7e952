"""The local cluster's node runtime: what kubelet, kube-proxy, a CNI plugin and cluster
DNS do for one host.

Pure modules (no processes, sockets or files): ``config`` (names and address ranges),
``ipam``, ``services`` (kube-proxy's nat table), ``capture`` (istio-init's nat table),
``dnsmsg`` (the DNS wire format and answers), ``podfiles`` (``resolv.conf``, ``hosts``)
and ``containerspec``. The modules that act on the machine: ``netns`` (entering a
network namespace from a thread), ``network`` (node and pod namespaces, routed veths),
``iptables`` (applying rule sets), ``dns`` (the DNS server), ``container`` (container
processes, secret volumes, exec and cp) and ``enter`` (the program that sets up a
container's mounts and then runs its command).

This package's ``__init__`` imports nothing, so ``python -m meshlet.runtime.enter``
starts fast and never loads gRPC.
"""

__all__: list[str] = []
