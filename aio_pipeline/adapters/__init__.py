"""Adapters: our client middlewares inside a user's own HTTP client, one module per library.

Existing code keeps its call sites (``session.get(...)``, ``client.get(...)``) and changes only
the line that creates the session or client. Each module imports its library; this package
imports none of them, so importing the aiohttp adapter never pulls in httpx and vice versa.
"""
