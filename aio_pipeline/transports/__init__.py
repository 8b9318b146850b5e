"""Transports: the leaves of a client pipeline, one module per HTTP library.

Each module imports its library; this package imports none of them, so importing
``aio_pipeline.transports.aiohttp`` never pulls in httpx and vice versa.
"""
