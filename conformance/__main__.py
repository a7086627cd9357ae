"""`python -m conformance run ...` / `python -m conformance receiver ...`."""

import sys

from .cli import main

sys.exit(main())
