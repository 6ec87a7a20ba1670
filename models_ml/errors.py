"""The base class of the library's errors that a user can fix: a model entry, a file.

``models_ml`` never imports ``flows``, so it has its own base; ``flows.errors.UserError`` is
the orchestration's, and ``flows.errors.user_error_types()`` gives both. The ``trapflow``
command prints either as one line on stderr and exits with code 2.
"""

from __future__ import annotations

__all__ = ["ModelConfigError", "UserError"]


class UserError(Exception):
    """A mistake in what the user configured or passed; the message is one line: what is
    wrong and what to do."""


class ModelConfigError(UserError, ValueError):
    """A model's entry cannot be used as written (no class names, no class -> category map)."""
