"""`python -m monitor detect --data-dir D --out-dir O` (see ops.detect; no Lambda bundle ships this)."""

from __future__ import annotations

import sys

from ops.detect import main

if __name__ == "__main__":
    sys.exit(main())
