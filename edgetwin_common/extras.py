"""Which optional extra a missing module belongs to, and the one line that says so.

A device installs ``edgetwin`` alone; the cloud service, training and conversion need
``edgetwin[cloud]`` (which includes ``edgetwin[export]``). A command that reaches for a
module of a missing extra prints ``needs the cloud extra: pip install 'edgetwin[cloud]'``
and exits 2 (bad usage: nothing was started), never a traceback.
"""

from __future__ import annotations

import importlib.util
import sys

EXIT_USAGE = 2

MODULE_EXTRAS: dict[str, str] = {
    "sqlalchemy": "cloud",
    "alembic": "cloud",
    "jinja2": "cloud",
    "dask": "cloud",
    "distributed": "cloud",
    "psycopg": "cloud",
    "tensorflow": "export",
    "keras": "export",
    "tf_keras": "export",
    "tqdm": "export",
}
"""Top-level module name -> the extra that installs it (pyproject.toml's extras)."""

EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "cloud": ("sqlalchemy", "alembic", "jinja2", "dask", "tensorflow"),
    "export": ("tensorflow",),
}
"""The modules whose presence says an extra is installed."""


def message(extra: str) -> str:
    """The one line: ``needs the cloud extra: pip install 'edgetwin[cloud]'``."""
    return f"needs the {extra} extra: pip install 'edgetwin[{extra}]'"


def extra_of(exc: ModuleNotFoundError) -> str | None:
    """The extra that provides the module ``exc`` is about; None: not one of ours."""
    name = (exc.name or "").partition(".")[0]
    return MODULE_EXTRAS.get(name)


def missing(extra: str) -> bool:
    """Whether a module of ``extra`` cannot be imported here (checked without importing)."""
    for name in EXTRA_MODULES[extra]:
        try:
            if importlib.util.find_spec(name) is None:
                return True
        except (ImportError, ValueError):
            return True
    return False


def report(exc: ModuleNotFoundError, prog: str, extra: str) -> int:
    """For a command's ``main``: print ``PROG needs the EXTRA extra: pip install ...``
    when ``exc`` is about a module of an extra (``extra``: the one the command's own
    install line names, e.g. cloud for everything cloud-sync does) and return the exit
    status 2; re-raise ``exc`` when the module belongs to no extra (a bug)."""
    if extra_of(exc) is None:
        raise exc
    print(f"{prog} {message(extra)}", file=sys.stderr)
    return EXIT_USAGE


def require(extra: str, prog: str) -> int | None:
    """Before a command that needs ``extra`` starts anything: the exit status 2 after
    the one line when it is missing, None when it is installed."""
    if not missing(extra):
        return None
    print(f"{prog} {message(extra)}", file=sys.stderr)
    return EXIT_USAGE
