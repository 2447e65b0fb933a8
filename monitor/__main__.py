"""`python -m monitor detect --data-dir D --out-dir O` (see monitor.detect)."""

from __future__ import annotations

import sys

from monitor.detect import main

if __name__ == "__main__":
    sys.exit(main())
