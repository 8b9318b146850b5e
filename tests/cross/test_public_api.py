"""The public surface: __all__ is exactly the public names, sorted, and importing is light."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import aio_pipeline

OPTIONAL = ("httpx", "prometheus_client", "structlog", "opentelemetry")


def test_all_is_sorted_and_exactly_the_public_names() -> None:
    public = {name for name in vars(aio_pipeline) if not name.startswith("_")}
    modules = {name for name, value in vars(aio_pipeline).items() if type(value) is type(aio_pipeline)}
    # resolved by __getattr__ on first use
    lazy = {"HttpxTransport", "HttpxPipelineTransport", *aio_pipeline._FROM_MIDDLEWARES}
    assert sorted(aio_pipeline.__all__) == aio_pipeline.__all__
    assert set(aio_pipeline.__all__) == (public - modules - {"annotations", "TYPE_CHECKING", "Any"}) | lazy


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
