"""The arrows of DESIGN.md, checked on the source: what each part of the house may import.

Every import counts, wherever it is written: at module level, under ``TYPE_CHECKING`` and inside
functions. The middlewares are read as what they are installed as, ``aio_pipeline.middlewares``.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: The core: the framework and its public building blocks; no transport, no third party.
CORE_MODULES = ("chain", "errors", "extensions")
CORE_PACKAGES = ("http", "propagation", "policy", "circuit", "observe")
#: The leaves and the top: they may import the core, and the one library each adapts.
OUTER_PACKAGES = ("transports", "adapters", "server", "facade", "testing", "middlewares")
#: The one place allowed to import each third-party library (``aiohttp`` and ``httpx``: the
#: leaves that adapt them, the facade that takes aio-request's aiohttp objects, and the testing
#: kit's aiohttp server variant).
ADAPTERS = {
    "aiohttp": ("transports.aiohttp", "adapters.aiohttp_client", "server.aiohttp", "facade.", "testing."),
    "httpx": ("transports.httpx", "adapters.httpx_transport"),
    "prometheus_client": ("middlewares.prometheus",),
    "structlog": ("middlewares.log",),
    "opentelemetry": ("middlewares.otel", "middlewares.tracing"),
    "pytest": ("testing.plugin",),
    "packaging": ("testing._entry_point",),  # pytest's own dependency, read by its plugin
    # aiohttp's C-accelerated foundations: what the core's headers and URLs are made of
    "multidict": ("",),
    "yarl": ("",),
}


def _modules() -> dict[str, Path]:
    """Every module of the package by its dotted name (the middlewares under their installed name)."""
    found: dict[str, Path] = {}
    for top, prefix in ((ROOT / "aio_pipeline", "aio_pipeline"), (ROOT / "middlewares", "aio_pipeline.middlewares")):
        for path in sorted(top.rglob("*.py")):
            if "middlewares" in path.relative_to(ROOT).parts[:2] and top.name == "aio_pipeline":
                continue  # aio_pipeline/middlewares is the installed name of middlewares/: read once
            parts = path.relative_to(top).with_suffix("").parts
            found[".".join((prefix, *parts)).removesuffix(".__init__")] = path
    return found


MODULES = _modules()


def _imports(name: str) -> Iterator[str]:
    """What module ``name`` imports, as absolute dotted names; ``from x import y`` gives ``x``, and
    ``x.y`` too when that is a module."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in MODULES)


IMPORTS = {name: set(_imports(name)) for name in MODULES}


def _part(name: str) -> str:
    """``transports.aiohttp`` for ``aio_pipeline.transports.aiohttp``; ``""`` for the root."""
    return name.removeprefix("aio_pipeline").removeprefix(".")


def _in(name: str, packages: tuple[str, ...]) -> bool:
    return _part(name).split(".")[0] in packages


def _is_core(name: str) -> bool:
    part = _part(name)
    return part != "" and (part.startswith("_") or part in CORE_MODULES or _in(name, CORE_PACKAGES))


CORE = sorted(name for name in MODULES if _is_core(name))
MIDDLEWARES = sorted(name for name in MODULES if _in(name, ("middlewares",)))


def test_the_map_has_every_part() -> None:
    parts = {_part(name).split(".")[0] for name in MODULES}
    assert parts >= {*CORE_MODULES, *CORE_PACKAGES, *OUTER_PACKAGES, "_client", "_transport"}
    assert len(MIDDLEWARES) >= 12


@pytest.mark.parametrize("name", CORE)
def test_the_core_imports_only_the_standard_library_multidict_yarl_and_the_core(name: str) -> None:
    for imported in IMPORTS[name]:
        top = imported.partition(".")[0]
        if top == "aio_pipeline":
            assert imported == "aio_pipeline" or _is_core(imported), f"{name} imports {imported}"
            assert imported != "aio_pipeline", f"{name} imports the package's top (a cycle in waiting)"
        else:
            assert top in sys.stdlib_module_names or top in ("__future__", "multidict", "yarl"), (
                f"{name} imports {imported}"
            )


@pytest.mark.parametrize("name", sorted(name for name in MODULES if name != "aio_pipeline"))
def test_nothing_in_the_package_imports_its_top(name: str) -> None:
    assert "aio_pipeline" not in IMPORTS[name], f"{name} imports aio_pipeline: import the part that has the name"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_a_third_party_library_is_imported_only_where_it_is_adapted(name: str) -> None:
    for imported in IMPORTS[name]:
        top = imported.partition(".")[0]
        if top in sys.stdlib_module_names or top in ("__future__", "aio_pipeline"):
            continue
        assert top in ADAPTERS, f"{name} imports {imported}, which no module adapts"
        assert _part(name).startswith(ADAPTERS[top]), f"only {ADAPTERS[top]} may import {top}; {name} does"


@pytest.mark.parametrize("name", sorted(name for name in MODULES if not _in(name, ("middlewares",))))
def test_another_package_is_reached_through_its_public_names(name: str) -> None:
    own = _part(name).split(".")[0]
    for imported in IMPORTS[name]:
        if not imported.startswith("aio_pipeline."):
            continue
        parts = _part(imported).split(".")
        if parts[0] != own and len(parts) > 1:
            assert not parts[1].startswith("_"), f"{name} imports {imported}: use aio_pipeline.{parts[0]}'s names"


@pytest.mark.parametrize("name", MIDDLEWARES)
def test_a_middleware_uses_public_names_only_and_never_another_middleware(name: str) -> None:
    own = _part(name).split(".")[:2]  # ["middlewares", "log"]: a middleware package may use its own modules
    for imported in IMPORTS[name]:
        if not imported.startswith("aio_pipeline"):
            continue
        assert imported != "aio_pipeline", f"{name} imports the package's top: the top imports the middlewares"
        parts = _part(imported).split(".")
        assert not any(part.startswith("_") for part in parts if parts[:2] != own), (
            f"{name} imports {imported}: middlewares use public names only"
        )
        if parts[:1] == ["middlewares"] and name != "aio_pipeline.middlewares":
            assert parts[:2] == own, f"{name} imports {imported}: what two middlewares share belongs in the core"
        assert not _in(imported, ("transports", "adapters", "server", "facade", "testing")), (
            f"{name} imports {imported}: middlewares never import a transport or an adapter"
        )


def _cycles() -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each as a sorted list."""
    edges = {name: sorted(m for m in IMPORTS[name] if m in MODULES and m != name) for name in MODULES}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in edges[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for name in sorted(MODULES):
        if name not in index:
            visit(name)
    return found


def test_there_is_no_import_cycle_not_even_under_type_checking() -> None:
    assert _cycles() == []


def test_a_cycle_would_be_seen() -> None:
    IMPORTS["aio_pipeline.http._request"].add("aio_pipeline.policy")
    try:
        assert any("aio_pipeline.policy" in group and "aio_pipeline.http" in group for group in _cycles())
    finally:
        IMPORTS["aio_pipeline.http._request"].discard("aio_pipeline.policy")


#: Source modules whose tests sit in a suite named otherwise (the suite that covers them, by
#: concern); every other module ``a/b/_name.py`` has ``tests/a/b/test_name.py``.
COVERED_BY = {
    "aio_pipeline/_client.py": "tests/test_pipeline.py",
    "aio_pipeline/chain.py": "tests/test_pipeline.py",
    "aio_pipeline/_transport.py": "tests/transports/test_transports.py",
    "aio_pipeline/errors.py": "tests/transports/test_transports.py",
    "aio_pipeline/extensions.py": "tests/middlewares/test_strategy.py",
    "aio_pipeline/circuit/_states.py": "tests/circuit/test_breaker.py",
    "aio_pipeline/circuit/_window.py": "tests/circuit/test_breaker.py",
    # aio-request's secondary names: only their bad input is tested (and, by name, their signatures)
    "aio_pipeline/facade/_extras.py": "tests/cross/test_bad_input.py",
    "aio_pipeline/facade/_familiar.py": "tests/facade/test_names.py",
    "aio_pipeline/facade/_modules.py": "tests/testing/test_shipped_middlewares.py",
    "aio_pipeline/facade/_server.py": "tests/server/test_aiohttp.py",
    "aio_pipeline/facade/_synthetic.py": "tests/facade/test_differential.py",
    "aio_pipeline/http/_builders.py": "tests/http/test_request.py",
    "aio_pipeline/http/_url.py": "tests/http/test_request.py",
    "aio_pipeline/observe/_labels.py": "tests/middlewares/test_prometheus.py",
    "aio_pipeline/observe/_metrics.py": "tests/facade/test_metrics_contract.py",
    "aio_pipeline/policy/_checks.py": "tests/cross/test_bad_input.py",
    "aio_pipeline/propagation/_wire.py": "tests/middlewares/test_wire.py",
    "aio_pipeline/testing/_entry_point.py": "tests/testing/test_plugin.py",
    "aio_pipeline/testing/_observe.py": "tests/testing/test_conformance.py",
    "aio_pipeline/testing/_report.py": "tests/testing/test_conformance.py",
    "aio_pipeline/transports/aiohttp.py": "tests/transports/test_transports.py",
    "aio_pipeline/transports/httpx.py": "tests/transports/test_transports.py",
    "middlewares/log/_events.py": "tests/middlewares/test_log.py",
}


#: Helpers of their package, tested through the classes that use them, not by their own names.
HELPERS = {
    "aio_pipeline/observe/_labels.py",
    "aio_pipeline/policy/_checks.py",
    "aio_pipeline/testing/_observe.py",
    "middlewares/log/_events.py",
}


def _test_module_for(source: Path) -> Path:
    relative = source.relative_to(ROOT)
    if relative.parts[0] == "middlewares":
        stem = source.parent.name if source.name == "__init__.py" else source.stem
        return ROOT / "tests" / "middlewares" / f"test_{stem.lstrip('_')}.py"
    return ROOT.joinpath("tests", *relative.parts[1:-1], f"test_{source.stem.lstrip('_')}.py")


SOURCES = sorted(
    path
    for name, path in MODULES.items()
    if path.name != "__init__.py" or (_in(name, ("middlewares",)) and path.parent.name != "middlewares")
)


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_source_module_has_its_test_module(source: Path) -> None:
    relative = str(source.relative_to(ROOT))
    suite = ROOT / COVERED_BY[relative] if relative in COVERED_BY else _test_module_for(source)
    assert suite.exists(), f"{relative} has no tests: {suite.relative_to(ROOT)} (or an entry in COVERED_BY)"
    # The suite really is about the module: it uses at least one of the names the module defines.
    defined = {
        node.name
        for node in ast.parse(source.read_text()).body
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and not node.name.startswith("_")
    }
    text = suite.read_text()
    if relative not in HELPERS:
        assert not defined or any(name in text for name in defined), f"{suite.name} uses nothing of {relative}"


def test_every_entry_of_covered_by_is_a_module_without_a_suite_of_its_own() -> None:
    for relative in COVERED_BY:
        source = ROOT / relative
        assert source.exists(), relative
        assert not _test_module_for(source).exists(), f"{relative} has its own suite now: drop it from COVERED_BY"
