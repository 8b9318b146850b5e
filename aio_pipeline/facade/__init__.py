"""The familiar facade: aio-request's API over our pipeline (``import aio_pipeline as aio_request``).

Everything here is assembly: ``setup()`` builds a ``Client`` whose pipeline is made of the same
middlewares a custom pipeline uses; the names below exist so that code written for aio-request
runs unchanged. Re-exported from ``aio_pipeline``.
"""

from ._familiar import (
    ClosableResponse,
    DelegateEndpointProvider,
    EmptyResponse,
    EndpointProvider,
    Header,
    Method,
    RequestStrategy,
    StaticEndpointProvider,
)
from ._setup import setup, setup_v2
from ._synthetic import SyntheticResponses

__all__ = [
    "ClosableResponse",
    "DelegateEndpointProvider",
    "EmptyResponse",
    "EndpointProvider",
    "Header",
    "Method",
    "RequestStrategy",
    "StaticEndpointProvider",
    "SyntheticResponses",
    "setup",
    "setup_v2",
]
