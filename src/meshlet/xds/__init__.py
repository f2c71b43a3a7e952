"""xDS: the control plane's ADS server (``server``, an async shell) around ``cache``
(per-proxy config as versioned bytes, pure), and the ``proxy-status`` view of it
(``status``).
"""
