"""Matching: the pure core (``matching.core``), the stream protocol, the replay CLI and, in
``matching.worker``, the matcher worker (see docs/architecture.md for the layers).

This package's ``__init__`` imports nothing, so ``python -m matching.replay`` and
``from matching.core import OrderBook`` work without Django settings.
"""
