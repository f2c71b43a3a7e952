"""The local cluster's daemon: the API server, the controllers, the pods' runtime and
the control plane, in one process (``python -m meshlet.daemon``).

Pure modules: ``admission`` (validation, defaults and kubectl's messages),
``injection`` (the sidecar injector), ``images`` (the image catalog),
``podplan`` (what a pod's supervisor runs), ``backoff`` and ``controllers.*``
(reconcilers as functions of desired and observed state). The shells: ``server``
(the API socket and the loops), ``kubelet`` (pods on the machine), ``controlplane``
(CA, xDS and pilot's snapshot) and ``supervisor`` (one process per pod).

This ``__init__`` imports nothing, so ``python -m meshlet.daemon.supervisor`` starts
without loading gRPC.
"""

__all__: list[str] = []
