"""Prometheus exporter for the Binance Cross Margin account."""

__version__ = "0.1.0"
