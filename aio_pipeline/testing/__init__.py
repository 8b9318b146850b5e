"""A testing kit for pipelines, and for middlewares written against aio-pipeline.

- ``FakeTransport``: a transport a test scripts attempt by attempt (``respond``, ``fail``,
  ``hang``), recording every attempt it received (``sent``) and every response it gave.
- ``check_middleware(middleware)``: runs a client middleware inside a standard pipeline
  against scripted scenarios, on a virtual clock, and raises ``AssertionError`` naming every rule
  it breaks (``Rule``); ``conformance_report`` returns the ``ConformanceReport`` instead, for
  other test runners. ``check_server_middleware`` and ``server_conformance_report`` do the same
  for a server middleware.
- ``aio_pipeline.testing.plugin``: pytest fixtures (``fake_transport``, ``make_pipeline``,
  ``virtual_clock``), loaded by the ``pytest11`` entry point when the ``testing`` extra is
  installed, or with ``-p aio_pipeline.testing.plugin``.

Nothing in the library imports this package: importing it is a test's choice, and nothing here
runs on a normal call.
"""

from __future__ import annotations

from ._conformance import check_middleware, check_server_middleware, conformance_report, server_conformance_report
from ._fake import FakeTransport, Sent, Step, fail, hang, respond
from ._report import ConformanceReport, Finding, Rule

__all__ = [
    "ConformanceReport",
    "FakeTransport",
    "Finding",
    "Rule",
    "Sent",
    "Step",
    "check_middleware",
    "check_server_middleware",
    "conformance_report",
    "fail",
    "hang",
    "respond",
    "server_conformance_report",
]
