"""``aio_pipeline.testing``'s public surface: ``__all__`` is exactly its public names, sorted, and
importing it needs neither pytest nor looptime (other test runners use the check too)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import aio_pipeline.testing


def test_all_is_sorted_and_exactly_the_public_names() -> None:
    public = {name for name in vars(aio_pipeline.testing) if not name.startswith("_")}
    modules = {name for name, value in vars(aio_pipeline.testing).items() if type(value) is type(aio_pipeline.testing)}

    assert aio_pipeline.testing.__all__ == sorted(aio_pipeline.testing.__all__)
    assert set(aio_pipeline.testing.__all__) == public - modules - {"annotations"}


def test_importing_it_imports_no_test_framework() -> None:
    code = textwrap.dedent(
        """
        import sys
        import aio_pipeline.testing
        loaded = sorted(name for name in ("pytest", "_pytest", "looptime", "pytest_asyncio") if name in sys.modules)
        assert loaded == [], loaded
        print("ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
