"""xDS: the control plane's ADS server (``server``, an async shell) around ``cache``
(per-proxy config as versioned bytes, pure), the per-stream bookkeeping it shares with
the agent's local server (``stream``), and the ``proxy-status`` view of it (``status``).
"""
