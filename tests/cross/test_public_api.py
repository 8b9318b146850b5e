"""The public surface: __all__ is exactly the public names, sorted, and importing is light."""

from __future__ import annotations

import importlib
import pkgutil
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import aio_pipeline

OPTIONAL = ("httpx", "prometheus_client", "structlog", "opentelemetry")


def test_all_is_exactly_the_public_names_each_once() -> None:
    public = {name for name in vars(aio_pipeline) if not name.startswith("_")}
    modules = {name for name, value in vars(aio_pipeline).items() if type(value) is type(aio_pipeline)}
    lazy = {"HttpxTransport", "HttpxPipelineTransport"}  # the one lazy seam: httpx, on first use
    assert len(set(aio_pipeline.__all__)) == len(aio_pipeline.__all__)
    assert set(aio_pipeline.__all__) == (public - modules - {"annotations", "TYPE_CHECKING", "Any"}) | lazy


def test_all_comes_in_four_blocks_by_audience_each_sorted() -> None:
    """The blocks of ``__all__`` in ``__init__.py`` (ruff's RUF022 keeps each one sorted)."""
    source = Path(aio_pipeline.__file__).read_text()
    blocks = re.findall(r"^__all__ \+?= \[  # (.+)$", source, flags=re.MULTILINE)
    assert blocks == ["the framework", "safety, observed", "drop-ins", "aio-request's names"]
    assert aio_pipeline.Pipeline in vars(aio_pipeline).values()
    first = aio_pipeline.__all__[: aio_pipeline.__all__.index("set_context") + 1]
    assert {"Pipeline", "Client", "Middleware", "Request", "Deadline", "PipelineError"} <= set(first)
    assert "setup" not in first


def test_the_middlewares_package_re_exports_every_middleware() -> None:
    import aio_pipeline.middlewares as middlewares

    for info in pkgutil.iter_modules(middlewares.__path__):
        module = importlib.import_module(f"aio_pipeline.middlewares.{info.name}")
        for name in getattr(module, "__all__", ()):
            assert getattr(middlewares, name) is getattr(module, name), f"{info.name}.{name}"


def test_every_exported_name_resolves() -> None:
    for name in aio_pipeline.__all__:
        assert getattr(aio_pipeline, name) is not None, name


def test_importing_the_core_and_middlewares_imports_no_optional_library() -> None:
    code = textwrap.dedent(
        f"""
        import sys, pkgutil, importlib
        import aio_pipeline, aio_pipeline.middlewares
        for info in pkgutil.iter_modules(aio_pipeline.middlewares.__path__):
            importlib.import_module("aio_pipeline.middlewares." + info.name)
        loaded = sorted(m for m in {OPTIONAL!r} if m in sys.modules)
        assert loaded == [], loaded
        print("ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_star_import_works() -> None:
    namespace: dict[str, object] = {}
    exec("from aio_pipeline import *", namespace)
    assert set(aio_pipeline.__all__) <= set(namespace)


def test_a_users_own_middlewares_module_does_not_collide_with_ours(tmp_path: Path) -> None:
    """An aiohttp app commonly has its own ``middlewares.py`` next to its ``main.py``; run from its
    directory, ours is still found, under ``aio_pipeline.middlewares``, and theirs is theirs."""
    app = tmp_path / "app"
    app.mkdir()
    (app / "middlewares.py").write_text("def setup_middlewares(app):\n    return 'theirs'\n")
    (app / "main.py").write_text(
        textwrap.dedent(
            """
            import sys
            from middlewares import setup_middlewares

            import aio_pipeline

            factory = aio_pipeline.aiohttp_middleware_factory(timeout=5)
            strategy = aio_pipeline.ParallelStrategy(attempts_count=2)
            from aio_pipeline.middlewares import ClientDeadline
            assert setup_middlewares(None) == "theirs"
            assert sys.modules["middlewares"].__file__.endswith("app/middlewares.py"), sys.modules["middlewares"]
            print(callable(factory), strategy.attempts_count, ClientDeadline.__module__)
            """
        )
    )
    result = subprocess.run([sys.executable, "main.py"], cwd=app, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "2", "aio_pipeline.middlewares.deadline"]
