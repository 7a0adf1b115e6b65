"""Errors that the CLI turns into one clear line and a non-zero exit code."""


class QgenError(Exception):
    """A user-facing error: bad input, missing files, unreachable services.

    The message must say what went wrong and what to do, in one line.
    """
