"""``python -m meshlet.scenario``: see ``meshlet.scenario.demo``."""

import sys

from meshlet.scenario.demo import main

sys.exit(main())
