"""The pure core of meshlet's istioctl-like verbs.

``tabwriter`` lays out text as Go's ``text/tabwriter`` does (istioctl's and
kubectl describe's tables); ``proxy_config`` reads a sidecar's admin answers
(``/config_dump``, ``/clusters?format=json``) and prints what
``istioctl proxy-config`` prints. Nothing here does I/O or reads the clock.
"""
