"""Prometheus exporter for Binance margin accounts.

Layers, each importing only those before it: :mod:`.config` (settings), :mod:`.binance` (the
REST client: transport, limits, one module per product), :mod:`.collectors` (models to metric
families, one module per product, the shared cache), :mod:`.web` (the HTTP server); :mod:`.cli`
wires them together, and :mod:`.demo` is the simulated Binance behind ``--demo``.
"""

__version__ = "0.1.0"
