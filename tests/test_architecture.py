"""The arrows of DESIGN.md, checked on the source: what each kind of module may import."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = sorted(p for p in (ROOT / "aio_pipeline").glob("_*.py") if p.name != "__init__.py")
MIDDLEWARES = sorted(p for p in (ROOT / "middlewares").glob("*.py") if p.name != "__init__.py")
#: The one module allowed to adapt each third-party library (besides aiohttp's leaves).
ADAPTERS = {"prometheus_client": {"metrics.py"}, "structlog": {"log.py"}, "opentelemetry": {"otel.py", "tracing.py"}}


def imported_modules(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports (relative ones resolved to the package)."""
    package = path.parent.name
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            names.add(f"{package}.{base}".rstrip(".") if node.level else base)
    return names


def test_there_is_a_core_to_check() -> None:
    assert {p.name for p in CORE} >= {"_pipeline.py", "_request.py", "_response.py", "_deadline.py", "_errors.py"}


@pytest.mark.parametrize("path", CORE, ids=lambda p: p.name)
def test_core_imports_only_the_standard_library_multidict_yarl_and_core(path: Path) -> None:
    for name in imported_modules(path):
        top, _, rest = name.partition(".")
        if top == "aio_pipeline":
            assert rest.startswith("_"), f"{path.name} imports {name}: core must not reach transports or server"
        else:
            # multidict and yarl: aiohttp's own C-accelerated foundations (headers, URLs).
            assert top in sys.stdlib_module_names or top in ("__future__", "multidict", "yarl"), (
                f"{path.name} imports {name}"
            )


@pytest.mark.parametrize("path", MIDDLEWARES, ids=lambda p: p.name)
def test_a_middleware_imports_core_and_never_another_middleware(path: Path) -> None:
    for name in imported_modules(path):
        top = name.partition(".")[0]
        assert top != "middlewares", f"{path.name} imports {name}: shared helpers belong in core"
        assert not name.startswith(("aio_pipeline.transports", "aio_pipeline.server")), f"{path.name} imports {name}"
        if top in ADAPTERS:
            assert path.name in ADAPTERS[top], f"only {ADAPTERS[top]} may import {top}"
        elif top not in ("aio_pipeline", "__future__"):
            assert top in sys.stdlib_module_names, f"{path.name} imports third-party {name}"
