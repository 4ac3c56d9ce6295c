"""``airflow-opa-mutation``: preview, verify, scan, doctor, bundle, admission and exemptions, for policy authors
and operators.

The commands (``_app``) need the ``cli`` extra (click, rich, PyYAML, opa-python-client, cryptography). This
module imports none of it, so that the console script installed without the extra still starts and says,
in one line and with exit status 2, which extra to install (``_extras``) instead of a traceback.
"""

from __future__ import annotations

import sys

from ._extras import missing_extra, missing_extra_message

try:
    from ._app import COMMANDS, cli, summary_command
    from ._app import main as _main
except ModuleNotFoundError as exc:  # the cli extra is not installed: say so when a command runs
    _missing = missing_extra(exc)
    if _missing is None:
        raise

    def main() -> None:
        """The console script without its extra: one line naming the extra, exit status 2."""
        assert _missing is not None
        print(missing_extra_message(*_missing), file=sys.stderr)
        sys.exit(2)

else:

    def main() -> None:
        """The console script's entry point (``_app.main``)."""
        _main()


__all__ = ["COMMANDS", "cli", "main", "summary_command"]
