"""User errors: mistakes a user can fix (a setting, a file, a folder, a busy warehouse).

Every ``flows`` error whose message says what is wrong and what to do subclasses
:class:`UserError`; ``models_ml`` has its own base of the same name (``models_ml.errors``,
as the library never imports ``flows``), and :func:`user_error_types` gives both. The
``trapflow`` command turns any of them into one line on stderr and exit code 2, the
traceback only in its log or under ``trapflow --debug`` (``flows/cli/_app.py``).

No imports here: ``flows.settings`` (and so the dashboard) imports this module.
"""

from __future__ import annotations

__all__ = ["UserError", "one_line", "user_error_types"]


class UserError(Exception):
    """A mistake in what the user configured or passed; the message is one line: what is
    wrong and what to do."""


def user_error_types() -> tuple[type[Exception], ...]:
    """The two bases of user errors: this package's and ``models_ml``'s."""
    from models_ml.errors import UserError as ModelsUserError

    return (UserError, ModelsUserError)


def one_line(exc: BaseException) -> str:
    """The error's message on one line (runs of whitespace, newlines too, become one space)."""
    return " ".join(str(exc).split()) or type(exc).__name__
