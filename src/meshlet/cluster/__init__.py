"""The local cluster as its clients see it: where its state lives (``home``) and the
API client the CLI verbs use (``client``)."""

__all__: list[str] = []
