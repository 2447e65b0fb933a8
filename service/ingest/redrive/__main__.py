"""`python -m service.ingest.redrive inspect|move` (see ops.redrive; no Lambda bundle ships this)."""

from __future__ import annotations

import sys

from ops.redrive import main

if __name__ == "__main__":
    sys.exit(main())
