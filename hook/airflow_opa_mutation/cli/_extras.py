"""Which extra installs a module the command line imports: a missing one is a one-line error, not a traceback.

Imports nothing outside the standard library, so it works where the ``cli`` extra is not installed.
"""

from __future__ import annotations

#: Top-level import name -> the extra(s) that install it (pyproject.toml's optional dependencies).
#: aiohttp comes with opa-python-client; Airflow's provider comes with the ``airflow`` extra.
EXTRA_OF_MODULE: dict[str, str] = {
    "click": "cli",
    "rich": "cli",
    "yaml": "cli",
    "opa_client": "cli",
    "aiohttp": "cli",
    "requests": "cli",
    "cryptography": "cli",
    "airflow": "airflow,cli",
}


def missing_extra(exc: BaseException) -> tuple[str, str] | None:
    """``(module, extras)`` when ``exc`` is a module an extra installs not being importable, else ``None``."""
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return None
    module = exc.name.split(".")[0]
    extras = EXTRA_OF_MODULE.get(module)
    return None if extras is None else (module, extras)


def install_hint(extras: str) -> str:
    return f"pip install 'airflow-opa-mutation[{extras}]'"


def missing_extra_message(module: str, extras: str) -> str:
    """One line for stderr: what is missing and the command that installs it."""
    return (
        f"airflow-opa-mutation: this command needs the Python module {module!r}, which is not installed; "
        f"install the command line's extra: {install_hint(extras)}"
    )
