"""The pytest plugin, run as a user runs it: pytest in a subprocess, on a test file of its own,
with warnings as errors. Also the README's example, exactly as printed, and how the ``pytest11``
entry point decides to load the plugin.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

from aio_pipeline.testing import _entry_point, conformance_report

ROOT = Path(__file__).resolve().parents[2]
INI = """\
[pytest]
asyncio_default_fixture_loop_scope = function
filterwarnings = error
"""


def run_pytest(directory: Path, test_file: str, *options: str) -> subprocess.CompletedProcess[str]:
    """pytest on ``test_file`` in ``directory``, importing this checkout's aio_pipeline."""
    (directory / "pytest.ini").write_text(INI)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *options, test_file],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


USES_THE_FIXTURES = """
import asyncio

import pytest

from aio_pipeline import Request, Response, get
from aio_pipeline.testing import FakeTransport, hang, respond


async def stamp(request, call_next, /):
    return await call_next(request.update_headers({"X-Stamp": "1"}))


def test_fake_transport_is_fresh_and_empty(fake_transport):
    assert isinstance(fake_transport, FakeTransport)
    assert fake_transport.sent == [] and fake_transport.responses == []


@pytest.mark.asyncio
async def test_make_pipeline_stacks_over_the_fake_transport(make_pipeline, fake_transport):
    fake_transport.add(respond(204))
    pipeline = make_pipeline([stamp])
    assert pipeline.transport is fake_transport
    response = await pipeline(get("http://127.0.0.1:1/x"))
    assert response.status == 204
    assert fake_transport.sent[0].request.headers["X-Stamp"] == "1"


@pytest.mark.asyncio
async def test_virtual_clock_makes_waits_free(virtual_clock, fake_transport):
    fake_transport.add(hang())
    started = virtual_clock.now()
    with pytest.raises(TimeoutError):
        await fake_transport.send(None, get("http://127.0.0.1:1/x"), 3600.0)
    await virtual_clock.advance(7200.0)
    assert virtual_clock.now() - started == pytest.approx(10800.0)
"""


def test_the_fixtures_work_when_the_plugin_is_enabled(tmp_path: Path) -> None:
    (tmp_path / "test_fixtures.py").write_text(USES_THE_FIXTURES)

    result = run_pytest(tmp_path, "test_fixtures.py", "-p", "aio_pipeline.testing.plugin")

    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"^3 passed", result.stdout, re.MULTILINE), result.stdout


def test_without_the_plugin_there_are_no_such_fixtures(tmp_path: Path) -> None:
    (tmp_path / "test_fixtures.py").write_text(USES_THE_FIXTURES)

    result = run_pytest(tmp_path, "test_fixtures.py", "-p", "no:aio_pipeline", "-p", "no:aio_pipeline.testing.plugin")

    assert result.returncode == 1, result.stdout + result.stderr
    assert "fixture 'fake_transport' not found" in result.stdout
    assert re.search(r"^3 errors", result.stdout, re.MULTILINE), result.stdout


def readme_example() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Testing your middleware\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, "the README's Testing your middleware section has no python example"
    return match.group(1)


def test_the_readme_example_runs_as_printed_and_fails_for_a_middleware_breaking_a_rule(tmp_path: Path) -> None:
    """The example exactly as printed passes; the same with a middleware that answers for a
    cancelled call fails its first test, naming the rule, as the README says it would."""
    example = readme_example()
    broken = example.replace(
        '    return await call_next(request.update_headers({"X-Tenant-Id": "acme"}))',
        textwrap.indent(
            textwrap.dedent(
                """\
                import asyncio
                try:
                    return await call_next(request.update_headers({"X-Tenant-Id": "acme"}))
                except asyncio.CancelledError:
                    return Response(503)
                """
            ),
            "    ",
        ).rstrip("\n"),
    )
    assert broken != example
    (tmp_path / "test_readme_example.py").write_text(example)
    (tmp_path / "test_readme_broken.py").write_text(broken)

    result = run_pytest(tmp_path, ".", "-rA", "-p", "aio_pipeline.testing.plugin")

    outcomes = sorted(re.findall(r"^(PASSED|FAILED) (test_readme_\w+\.py::\w+)", result.stdout, re.MULTILINE))
    assert outcomes == [
        ("FAILED", "test_readme_broken.py::test_add_tenant_keeps_the_rules"),
        ("PASSED", "test_readme_broken.py::test_add_tenant_sends_the_header"),
        ("PASSED", "test_readme_example.py::test_add_tenant_keeps_the_rules"),
        ("PASSED", "test_readme_example.py::test_add_tenant_sends_the_header"),
    ], result.stdout + result.stderr
    assert "client middleware add_tenant breaks 1 of 7 rules:" in result.stdout
    assert "- broken: lets cancellation through and leaves no task behind" in result.stdout


def test_the_readme_shows_the_report_the_check_gives() -> None:
    from tests.testing.test_conformance import rewraps_the_response

    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Testing your middleware\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```text\n(.*?)\n```", section, re.DOTALL)
    assert match is not None

    assert match.group(1) == str(conformance_report(rewraps_the_response))


# --- the entry point ---------------------------------------------------------------------------


def test_the_entry_point_and_the_extra_are_declared() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    assert project["entry-points"]["pytest11"] == {"aio_pipeline": "aio_pipeline.testing._entry_point"}
    testing = project["optional-dependencies"]["testing"]
    assert sorted(requirement.split(">")[0].split("=")[0] for requirement in testing) == [
        "looptime",
        "pytest",
        "pytest-asyncio",
    ]


def write_distribution(directory: Path, *requirements: str) -> None:
    """A distribution ``fake-dist`` as an installer leaves it: its metadata in a dist-info."""
    info = directory / "fake_dist-1.0.dist-info"
    info.mkdir()
    lines = ["Metadata-Version: 2.1", "Name: fake-dist", "Version: 1.0"]
    lines += [f"Requires-Dist: {requirement}" for requirement in requirements]
    (info / "METADATA").write_text("\n".join(lines) + "\n")


def test_the_plugin_loads_only_when_every_requirement_of_the_extra_is_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_distribution(
        tmp_path,
        "pytest>=1",  # the distribution's own requirement: not part of any extra
        'pytest>=1; extra == "present"',
        'looptime>=0.1; extra == "present"',
        'pytest>=1; extra == "partly"',
        'no-such-distribution-anywhere>=1; extra == "partly"',
        'pytest>=999; extra == "too-old"',
    )
    monkeypatch.syspath_prepend(str(tmp_path))

    assert _entry_point.extra_installed("present", "fake-dist")
    assert not _entry_point.extra_installed("partly", "fake-dist")
    assert not _entry_point.extra_installed("too-old", "fake-dist")
    assert not _entry_point.extra_installed("no-such-extra", "fake-dist")
    assert not _entry_point.extra_installed("testing", "no-such-distribution-anywhere")
