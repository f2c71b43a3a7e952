"""The control plane's pure core: per-proxy Envoy config as functions of (proxy, snapshot).

``snapshot`` (the push context), ``authn`` (PeerAuthentication composition),
``listeners``, ``clusters``, ``routes``, ``endpoints``, ``secrets`` (SDS names) and
``simulation`` (what happens to a call). No I/O, no clock, no environment.
"""
