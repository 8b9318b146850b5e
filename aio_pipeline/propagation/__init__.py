"""What crosses from a caller to its callee: the deadline and the priority.

A ``Deadline`` is absolute inside a process (the loop's clock) and relative on the wire
(``X-Request-Timeout``, seconds left); a ``Priority`` is ``high``, ``normal`` or ``low``
(``X-Request-Priority``). The ``Context`` (``get_context``, ``set_context``, ``detached``) is
how a server request hands both to every call its handler makes; ``DeadlineTimer`` and its
scopes are how a client call is cut at its deadline with one loop timer for all calls, and how
the layers inside know it is (``covered``); ``within`` is a scope of its own for everything else.
"""

from ._context import CONTEXT, Context, detached, get_context, inherited_deadline, set_context
from ._deadline import (
    DEFAULT_TIMEOUT,
    LOW_TIMEOUT_THRESHOLD,
    MAX_WIRE_TIMEOUT,
    Deadline,
    DeadlineScope,
    DeadlineTimer,
    clock_of,
    covered,
    covering,
    earliest,
    format_timeout,
    loop_clock,
    loop_time,
    own_bound,
    parse_timeout,
    time_to_send,
    within,
)
from ._priority import Priority
from ._wire import (
    ATTEMPT_HEADER,
    PRIORITY_HEADER,
    SERVICE_NAME_HEADER,
    SYSTEM_HEADERS,
    TIMEOUT_HEADER,
    InboundRequest,
    timeout_header_value,
)

__all__ = [
    "ATTEMPT_HEADER",
    "CONTEXT",
    "DEFAULT_TIMEOUT",
    "LOW_TIMEOUT_THRESHOLD",
    "MAX_WIRE_TIMEOUT",
    "PRIORITY_HEADER",
    "SERVICE_NAME_HEADER",
    "SYSTEM_HEADERS",
    "TIMEOUT_HEADER",
    "Context",
    "Deadline",
    "DeadlineScope",
    "DeadlineTimer",
    "InboundRequest",
    "Priority",
    "clock_of",
    "covered",
    "covering",
    "detached",
    "earliest",
    "format_timeout",
    "get_context",
    "inherited_deadline",
    "loop_clock",
    "loop_time",
    "own_bound",
    "parse_timeout",
    "set_context",
    "time_to_send",
    "timeout_header_value",
    "within",
]
