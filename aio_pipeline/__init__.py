"""aio-pipeline: safe, observable calls between microservices, as a stack of middlewares.

Every public name is re-exported here; the modules behind them are private. httpx is imported
only when ``HttpxTransport`` is first used, so the package imports without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._builders import (
    delete,
    get,
    head,
    options,
    patch,
    patch_json,
    post,
    post_json,
    put,
    put_json,
    request,
    request_json,
)
from ._client import Client, ResponseContext
from ._deadline import Deadline
from ._errors import (
    CircuitOpenError,
    ConnectError,
    ContentTypeError,
    DeadlineExceededError,
    InvalidRequestError,
    OverloadedError,
    PipelineError,
    RejectedError,
    TooManyRedirectsError,
    TransportError,
)
from ._headers import Headers
from ._pipeline import Handler, Middleware, Pipeline, compose
from ._priority import Priority
from ._request import Request
from ._response import Response
from ._transport import Transport
from .transports.aiohttp import AioHttpTransport

if TYPE_CHECKING:
    from .transports.httpx import HttpxTransport

__all__ = [
    "AioHttpTransport",
    "CircuitOpenError",
    "Client",
    "ConnectError",
    "ContentTypeError",
    "Deadline",
    "DeadlineExceededError",
    "Handler",
    "Headers",
    "HttpxTransport",
    "InvalidRequestError",
    "Middleware",
    "OverloadedError",
    "Pipeline",
    "PipelineError",
    "Priority",
    "RejectedError",
    "Request",
    "Response",
    "ResponseContext",
    "TooManyRedirectsError",
    "Transport",
    "TransportError",
    "compose",
    "delete",
    "get",
    "head",
    "options",
    "patch",
    "patch_json",
    "post",
    "post_json",
    "put",
    "put_json",
    "request",
    "request_json",
]


def __getattr__(name: str) -> Any:
    # Lazy, so that importing the package never imports httpx. Without httpx installed the
    # name still exists (``from aio_pipeline import *`` works) and fails when instantiated.
    if name == "HttpxTransport":
        try:
            from .transports.httpx import HttpxTransport
        except ImportError as error:
            return _missing_extra(name, "httpx", error)
        return HttpxTransport
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _missing_extra(name: str, extra: str, error: ImportError) -> type:
    def __init__(self: object, *args: object, **kwargs: object) -> None:
        raise ImportError(f"{name} needs the {extra!r} extra: pip install 'aio-pipeline[{extra}]'") from error

    return type(name, (), {"__init__": __init__, "__doc__": f"Unavailable: install aio-pipeline[{extra}]."})
