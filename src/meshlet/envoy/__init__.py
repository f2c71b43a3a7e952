"""Envoy's semantics on Envoy v3 protos, as pure functions both the proxy and the control
plane's simulator use (filter-chain matching first)."""
