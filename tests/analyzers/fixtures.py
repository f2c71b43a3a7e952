"""The scenario's objects in namespace ``test``, as YAML pieces the tests change one line
at a time: the repository's own manifests, and the Secrets and Namespace they need."""

from __future__ import annotations

from tests import manifests
from tests.manifests import join

DEPLOYMENT = manifests.HTTPBIN_DEPLOYMENT
SERVICE = manifests.HTTPBIN_SERVICE
SIDECAR = manifests.SIDECAR
NAMESPACE_STRICT = manifests.NAMESPACE_STRICT
PORT_DISABLE = manifests.PORT_DISABLE

SECRETS = """\
apiVersion: v1
kind: Secret
metadata:
  name: httpbin-mtls-termination
type: kubernetes.io/tls
stringData:
  tls.crt: cert
  tls.key: key
---
apiVersion: v1
kind: Secret
metadata:
  name: httpbin-mtls-termination-cacert
stringData:
  ca.crt: ca
"""

NAMESPACE = manifests.TEST_NAMESPACE
SCENARIO = join(DEPLOYMENT, SERVICE, SIDECAR, NAMESPACE_STRICT, PORT_DISABLE)
