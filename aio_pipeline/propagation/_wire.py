"""What crosses the wire between services: the system headers and how their values are written.

The names and formats are aio-request's, so our clients and servers interoperate with it:

    X-Request-Timeout    seconds left of the caller's deadline, a decimal such as ``4.9873``
    X-Request-Priority   ``high``, ``normal`` or ``low``
    X-Request-Attempt    1 for the first attempt of a call, 2 for the next, ...

Reading them is ``parse_timeout`` (in ``_deadline``) and ``Priority.parse``: both tolerate any
input, since a header is whatever a client chose to send.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Protocol

from multidict import istr

from ._deadline import Deadline, loop_time

__all__ = [
    "ATTEMPT_HEADER",
    "PRIORITY_HEADER",
    "SERVICE_NAME_HEADER",
    "SYSTEM_HEADERS",
    "TIMEOUT_HEADER",
    "InboundRequest",
    "timeout_header_value",
]

# multidict's case-insensitive strings: setting or finding them in headers skips lower-casing.
TIMEOUT_HEADER: Final = istr("X-Request-Timeout")
PRIORITY_HEADER: Final = istr("X-Request-Priority")
ATTEMPT_HEADER: Final = istr("X-Request-Attempt")
#: The calling service's name, for the server's metrics (written and read by observability).
SERVICE_NAME_HEADER: Final = "X-Service-Name"

#: The headers the client writes for every attempt (and overwrites when a caller set them).
SYSTEM_HEADERS: Final = (TIMEOUT_HEADER, PRIORITY_HEADER, ATTEMPT_HEADER)

# Past this many seconds a ten-thousandth is below float resolution, and ``seconds * 10_000``
# could overflow; such values are formatted as they are.
_TRUNCATE_BELOW = 1e12


def timeout_header_value(deadline: Deadline) -> str:
    """``X-Request-Timeout`` for ``deadline``, from the time left now.

    The value is truncated, not rounded, to the four decimals sent, so it never claims more
    time than is left: a callee that trusts it finishes before the caller gives up.
    """
    seconds = deadline.deadline_at - loop_time()
    if seconds <= 0:
        return "0.0000"
    if seconds < _TRUNCATE_BELOW:
        seconds = int(seconds * 10_000) / 10_000  # > 0 here: int() truncates, as floor() would
    return f"{seconds:.4f}"


class InboundRequest(Protocol):
    """What a server middleware needs of the framework's request: its headers.

    aiohttp's ``web.Request`` is one; so is any object with a ``headers`` mapping whose
    look-ups ignore case, which is how tests drive the server middlewares without a server.
    """

    @property
    def headers(self) -> Mapping[str, str]: ...
