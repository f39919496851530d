"""`python -m exporter`: the same entry point as the console script."""

import sys

from exporter.cli import main

sys.exit(main())
