"""meshlet on Kubernetes: the API server as the store, beyond one host.

- ``settings``: ``--set`` flags for a cluster install (the image's hub and tag on top
  of the mesh settings) and the injection settings that follow from them (pure);
- ``admission``: the sidecar injector as a mutating webhook answers it
  (AdmissionReview v1 in, JSONPatch out) and as ``kube-inject`` applies it (pure);
- ``jsonpatch``: RFC 6902 patches from two JSON values (pure);
- ``manifests``: everything ``install --kubeconfig`` applies, CRDs generated from
  meshlet's own schemas (pure);
- ``watchstate``: one kind's cache and the reconcile loop's decisions (pure);
- ``client``: the API server through ``kubernetes-asyncio`` (async);
- ``reflector`` / ``source``: list + watch per kind, feeding pilot's snapshot (async);
- ``tokenreview``: the CA's authentication of projected tokens (async);
- ``webhook``: the injector served on 15017 (async);
- ``controlplane``: the control plane's process in a cluster (``python -m meshlet.kube``);
- ``install``: server-side apply and purge of the manifests (async);
- ``portforward_frames``: the WebSocket port-forward channel protocol (pure);
- ``portforward``: a pod's port (the sidecar's admin, istiod's xDS) through the API
  server's ``portforward`` subresource (async);
- ``istio_init``: the init container that writes the capture rules.
"""

from __future__ import annotations

__all__: list[str] = []
