"""The ``meshlet`` command: kubectl-like verbs for the cluster, istioctl-like verbs for the mesh."""
