"""Compatibility shim: run ``python -m stealth_spec.bundle``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from stealth_spec.bundle import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
