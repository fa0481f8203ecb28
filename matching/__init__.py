"""Matching: the pure core (``matching.core``), the replay CLI and, on top, the engine service.

This package's ``__init__`` imports nothing, so ``python -m matching.replay`` and
``from matching.core import OrderBook`` work without Django settings.
"""
