"""User-facing errors. Each one's str() is a single line naming the file/field and the fix.

The CLI prints it and exits with the class's exit code; nothing else shows a traceback.
"""


class UserError(Exception):
    """Bad input the user can fix (exit code 2)."""

    exit_code = 2


class SuiteError(UserError, ValueError):
    """A user-facing configuration error (suite, model paths, settings); str() is the whole one-line message."""


class DoesNotFit(UserError):
    """The memory preflight says the job cannot fit the budget (exit code 3)."""

    exit_code = 3


class DataError(UserError, ValueError):
    """A data problem a user can fix (a data file, a line of it, a recipe); str() is the whole one-line message."""
