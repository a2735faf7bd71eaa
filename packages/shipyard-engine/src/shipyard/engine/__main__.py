from __future__ import annotations

import sys

from shipyard.engine.cli import main

sys.exit(main())
