"""The pure core: routing, header hygiene, conversion, SSE reading, the usage record, errors.

Nothing here does I/O (no sockets, files, event loop or clock-driven state beyond timestamps);
tests/test_layers.py holds it to that.
"""
