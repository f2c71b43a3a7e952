"""Kubernetes and Istio resources: loading, schemas, typed models and validation (pure)."""
