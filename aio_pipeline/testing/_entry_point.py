"""The ``pytest11`` entry point ``aio_pipeline``: loads ``aio_pipeline.testing.plugin`` when the
``testing`` extra is installed, and nothing otherwise.

An entry point is installed with the package whatever extras were asked for, and pip records
no extras; what shows that ``aio-pipeline[testing]`` was installed is that every requirement of
that extra is, in a version it allows. pytest runs this module only as a plugin, so
``packaging`` (a dependency of pytest) is there to read the requirements.
"""

from __future__ import annotations

from importlib import metadata

__all__ = ["extra_installed"]


def extra_installed(extra: str = "testing", distribution: str = "aio-pipeline") -> bool:
    """Whether every requirement of ``distribution``'s ``extra`` is installed, in a version it
    allows (``False`` for an extra it does not have, or when it is not installed itself)."""
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        requires = metadata.requires(distribution) or []
    except metadata.PackageNotFoundError:
        return False
    wanted: list[Requirement] = []
    for text in requires:
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            return False
        if requirement.marker is not None and requirement.marker.evaluate({"extra": extra}):
            wanted.append(requirement)
    if not wanted:
        return False
    for requirement in wanted:
        try:
            version = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            return False
        if not requirement.specifier.contains(version, prereleases=True):
            return False
    return True


#: pytest imports the plugins a plugin module names here.
pytest_plugins = ["aio_pipeline.testing.plugin"] if extra_installed() else []
