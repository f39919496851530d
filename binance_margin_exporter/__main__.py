"""`python -m binance_margin_exporter`: the same entry point as the console script."""

import sys

from binance_margin_exporter.cli import main

sys.exit(main())
