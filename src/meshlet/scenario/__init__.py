"""The reference scenario, TLS termination on the sidecar, as meshlet's main job.

- ``steps``: the scenario's commands and the outputs it shows, as data (pure);
- ``compare``: the normaliser and the comparison giving a PASS/FAIL verdict (pure);
- ``runner``: runs the commands through the real ``meshlet`` command (shell);
- ``demo``: ``python -m meshlet.scenario`` (``scripts/demo.sh``) for a user.
"""

from meshlet.scenario.compare import Verdict, compare_output
from meshlet.scenario.steps import CLEANUP, SCENARIO, Command, Compare, Step

__all__ = ["CLEANUP", "SCENARIO", "Command", "Compare", "Step", "Verdict", "compare_output"]
