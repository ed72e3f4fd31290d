"""``python -m services.loadtest``: simulated fans against a gateway (same as ``avatar load``)."""

import sys

from services.loadtest.cli import main

sys.exit(main())
