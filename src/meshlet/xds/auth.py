"""Whose config a proxy may have on the authenticated ADS port (pure).

Theory of operation
-------------------
On 15012 every ADS stream proves an identity before its first request is read: the
caller's mesh certificate or its pod token, checked as the CA checks them
(``meshlet.ca.server.CAServer.authenticate_caller``). A stream that proves nothing ends
with ``UNAUTHENTICATED`` / ``authentication failure``, as istiod's does.

The first request then names the node, and the node decides whose config is built. As
istiod does, the node must be of the proven identity:

- every namespace the node claims must be the identity's: the ``POD.NS`` part of its
  id (the pod meshlet builds config for), the first label of its DNS domain
  (``NS.svc.cluster.local``) and the ``NAMESPACE`` metadata when given; a node that
  claims no namespace at all is refused (no config would be built for it anyway);
- the ``SERVICE_ACCOUNT`` metadata, when given, must be the identity's service account.

Otherwise the stream ends with ``PERMISSION_DENIED`` and istiod's words,
``authorization failed: no identities ([spiffe://…]) matched NS/SA``.

Port 15010 proves nothing and checks nothing: it is for the node's own tools.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from meshlet.ca.signing import SpiffeId
from meshlet.errors import AuthorizationError
from meshlet.xds.cache import parse_node_id

__all__ = [
    "AUTHENTICATION_FAILURE",
    "NodeClaim",
    "authorization_failure",
    "authorize_node",
]

#: What a caller that proves no identity is told (the reason goes to the log).
AUTHENTICATION_FAILURE = "authentication failure"

_NAMESPACE = "NAMESPACE"
_SERVICE_ACCOUNT = "SERVICE_ACCOUNT"


@dataclass(frozen=True, slots=True)
class NodeClaim:
    """Who a node says it is: the namespaces it names (sorted) and its service account."""

    namespaces: tuple[str, ...]
    service_account: str = ""  # "" when the metadata does not say

    @classmethod
    def of(cls, node_id: str, metadata: Mapping[str, str]) -> NodeClaim:
        """The claim of a node id and its (string) metadata."""
        namespaces: set[str] = set()
        ref = parse_node_id(node_id)
        if ref is not None:
            namespaces.add(ref.namespace)
            domain = node_id.rsplit("~", 1)[-1]
            first_label = domain.split(".", 1)[0]
            if first_label:
                namespaces.add(first_label)
        if metadata.get(_NAMESPACE):
            namespaces.add(metadata[_NAMESPACE])
        return cls(tuple(sorted(namespaces)), metadata.get(_SERVICE_ACCOUNT, ""))


def authorize_node(identity: SpiffeId, claim: NodeClaim) -> None:
    """Nothing when ``identity`` may have the node's config; else ``AuthorizationError``.

    The message is istiod's reason (``no identities ([…]) matched NS/SA``); the caller
    is told ``authorization failed: `` and that reason.
    """
    foreign = [ns for ns in claim.namespaces if ns != identity.namespace]
    namespace_ok = bool(claim.namespaces) and not foreign
    account_ok = not claim.service_account or claim.service_account == identity.service_account
    if namespace_ok and account_ok:
        return
    shown = foreign[0] if foreign else (claim.namespaces[0] if claim.namespaces else "")
    raise AuthorizationError(
        f"no identities ([{identity}]) matched {shown}/{claim.service_account}",
        field="node",
    )


def authorization_failure(error: AuthorizationError) -> str:
    """The status message of a refused node, as istiod words it."""
    return f"authorization failed: {error.message}"
