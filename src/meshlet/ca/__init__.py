"""The mesh certificate authority.

- ``signing`` (pure): SPIFFE identities, the signer, signing CSRs as Istio does, the
  self-signed root and the plug-in (``cacerts``) CA.
- ``tokens`` (pure): pod-bound tokens that prove a pod's namespace and service account.
- ``authn`` (pure): who a caller of the CA is, from its token or its mesh certificate.
- ``protocol``: the messages of ``istio.v1.auth.IstioCertificateService`` (``ca.proto``).
- ``store``: the CA's files on disk (root, key, token key), made once and kept.
- ``server`` / ``client``: the gRPC service over TLS and the call the agent makes.
"""
