"""`python -m service.relay.redrive --since T --until T` (ops.relay_redrive; no Lambda bundle ships it)."""

from __future__ import annotations

import sys

from ops.relay_redrive import main

if __name__ == "__main__":
    sys.exit(main())
