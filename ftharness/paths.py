"""Where ftharness finds its files: the cache (converted models, trained artifacts) and its package data."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path


def cache_dir() -> Path:
    """``$FTHARNESS_CACHE``, else ``$XDG_CACHE_HOME/ftharness``, else ``~/.cache/ftharness``."""
    if env := os.environ.get("FTHARNESS_CACHE"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ftharness"


def package_data(*parts: str) -> Path:
    """A file shipped inside the ftharness package (data tables, templates, suite data, the bundled task
    and suites), the same in a checkout and in an installed wheel. pip installs packages as files, so the
    resource is a real path that can be opened, listed and resolved against."""
    return Path(str(resources.files("ftharness").joinpath(*parts)))


def artifacts_dir() -> Path:
    """Trained candidates, one folder per hash of (base model, spec, data)."""
    return cache_dir() / "artifacts"
