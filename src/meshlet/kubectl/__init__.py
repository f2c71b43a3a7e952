"""The pure core of meshlet's kubectl-like verbs.

``names`` resolves what a user types (``po``, ``deployment.apps``, ``pod/x``);
``selectors`` parses ``-l``; ``printers`` renders ``get`` (tables, ``-o wide``,
``yaml``, ``json``, ``name``, ``jsonpath``) with ``age``, ``encode`` and
``jsonpath``; ``create`` builds the objects of ``create namespace|secret``;
``messages`` holds kubectl's words; ``pod_names`` names a Deployment's pods.
Nothing here does I/O or reads the clock: the verbs pass objects and ``now`` in.
"""
