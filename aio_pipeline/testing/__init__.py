"""A testing kit for pipelines and for middlewares written against aio-pipeline.

``FakeTransport`` is a transport a test scripts attempt by attempt.
"""

from __future__ import annotations

from ._fake import FakeTransport, Sent, Step

__all__ = ["FakeTransport", "Sent", "Step"]
