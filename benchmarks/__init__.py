"""Benchmarks: the pipeline against raw aiohttp and httpx, measured in one run (see run.py)."""
