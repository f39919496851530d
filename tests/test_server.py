"""The HTTP front's tests are in tests/test_web_*.py (one file per module of
binance_margin_exporter/web/). This module only keeps the name tests/test_process.py imports."""

from tests.web_helpers import make_cert

__all__ = ["make_cert"]
