"""pytest fixtures for testing middlewares and pipelines.

    fake_transport    a fresh ``FakeTransport`` per test, with an empty script: ``add`` steps to it
    make_pipeline     ``make_pipeline([mw, ...])``: a ``Pipeline`` of those middlewares over
                      ``fake_transport`` (or over ``transport=`` given)
    virtual_clock     runs the test on the virtual loop clock of ``looptime``: every sleep, timeout
                      and deadline takes no real time; ``virtual_clock.now()`` is the loop's time

How it loads: installing the ``testing`` extra (``pip install 'aio-pipeline[testing]'``) makes
pytest load it by itself (the ``pytest11`` entry point ``aio_pipeline`` loads this module when
every requirement of that extra is installed; ``-p no:aio_pipeline`` turns that off). Without
the extra, enable it with ``-p aio_pipeline.testing.plugin`` or ``pytest_plugins =
["aio_pipeline.testing.plugin"]`` in the root ``conftest.py``. ``virtual_clock`` needs
``looptime`` and an async test (``pytest-asyncio``), both in the extra.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable, Iterable

import pytest

from .._client import Pipeline
from .._transport import Transport
from ..chain import Middleware
from ..http import Request, Response
from ._fake import FakeTransport

__all__ = ["LoopClock", "fake_transport", "make_pipeline", "virtual_clock"]

_LOOPTIME_MISSING = "the virtual_clock fixture needs looptime: pip install 'aio-pipeline[testing]'"


class LoopClock:
    """The running loop's clock, in seconds; virtual in a test that uses ``virtual_clock``."""

    def now(self) -> float:
        """The running loop's time, in seconds."""
        return asyncio.get_running_loop().time()

    async def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass on the loop's clock (instantly, when it is virtual)."""
        await asyncio.sleep(seconds)


@pytest.fixture
def fake_transport() -> FakeTransport:
    """A ``FakeTransport`` with an empty script."""
    return FakeTransport()


@pytest.fixture
def make_pipeline(fake_transport: FakeTransport) -> Callable[..., Pipeline]:
    """``make_pipeline(middlewares, transport=None)``: a ``Pipeline`` of ``middlewares`` (first
    outermost) over ``transport``, by default this test's ``fake_transport``."""

    def make(middlewares: Iterable[Middleware[Request, Response]], transport: Transport | None = None) -> Pipeline:
        return Pipeline(fake_transport if transport is None else transport, middlewares)

    return make


@pytest.fixture
def virtual_clock() -> LoopClock:
    """Runs the test on a virtual loop clock (see the module) and gives that clock.

    Synchronous on purpose, as looptime's own fixture is: it is read inside the test, where the
    test's loop runs.
    """
    if importlib.util.find_spec("looptime") is None:
        pytest.fail(_LOOPTIME_MISSING, pytrace=False)
    return LoopClock()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that asks for ``virtual_clock`` runs with ``@pytest.mark.looptime``, unless it set
    the mark itself (its options then apply)."""
    if importlib.util.find_spec("looptime") is None:
        return  # the fixture says what is missing, where it is used
    for item in items:
        if "virtual_clock" in getattr(item, "fixturenames", ()) and item.get_closest_marker("looptime") is None:
            item.add_marker(pytest.mark.looptime)
