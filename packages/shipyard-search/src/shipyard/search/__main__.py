from __future__ import annotations

import sys

from shipyard.search._cli import main

sys.exit(main())
