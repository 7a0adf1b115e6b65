"""Errors that the CLI turns into one clear line and a non-zero exit code."""


class QgenError(Exception):
    """A user-facing error: bad input, missing files, unreachable services.

    The message must say what went wrong and what to do, in one line.
    """


def first_line(exc: BaseException) -> str:
    """What a one-line error quotes of another library's exception: the first line of its message, or
    its type's name when the message is empty."""
    return _message_line(exc) or type(exc).__name__


def named_first_line(exc: BaseException) -> str:
    """``Type: first line`` of ``exc``'s message, or just ``Type`` when the message is empty."""
    text = _message_line(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _message_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else ""
