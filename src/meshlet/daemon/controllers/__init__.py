"""The controllers' decisions as pure functions of (desired, observed) state.

``deployments`` (a Deployment's pods: replicas, rolling a changed template, status),
``namespaces`` (what every namespace holds: the ``istio-ca-root-cert`` ConfigMap and
the ``default`` ServiceAccount), ``services`` (endpoints, kube-proxy's rules and the
DNS table) and ``podstatus`` (a pod's status from what its supervisor reports).
"""

__all__: list[str] = []
