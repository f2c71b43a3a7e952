"""The data plane: listeners, TLS, HTTP and the pure protocol pieces they are built on."""
