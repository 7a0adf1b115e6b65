"""The CLI's safety net: an exception no command expected becomes one line and a traceback file.

Every input error is a QgenError (one ``qgen: error:`` line, exit 2). Anything else is a bug in
qgen or in a library it calls; a raw traceback would bury the one thing a user can act on, and
silence would lose what a maintainer needs. So the user gets one ``qgen: internal error:`` line
(exit 1) that names a file holding the full traceback.
"""

from __future__ import annotations

import errno
import os
import sys
import tempfile
import time
import traceback

#: The exit status of an internal error (2 is bad input, 130 an interrupt).
INTERNAL_ERROR_STATUS = 1


#: OSErrors that are the machine's state, not qgen's bug: a user error line, not an internal error.
ENVIRONMENT_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT}


def is_environment_error(exc: OSError) -> bool:
    """A permission, read-only or full-disk error on a named file."""
    return exc.errno in ENVIRONMENT_ERRNOS and exc.filename is not None


def report_internal_error(exc: BaseException) -> int:
    """Write ``exc``'s traceback to a new file in the temp folder, print the one line; the exit status."""
    summary = _one_line(exc)
    try:
        where = save_traceback(exc)
        detail = f"the traceback is in {where}; please include it when you report this"
    except OSError as err:  # a full or read-only temp folder: still one line, and say why there is no file
        detail = f"the traceback could not be saved ({err.strerror or err})"
    print(f"qgen: internal error: {summary} ({detail})", file=sys.stderr)
    return INTERNAL_ERROR_STATUS


def save_traceback(exc: BaseException) -> str:
    """The traceback and the command line, in a file only this user can read (paths and arguments
    can be private); returns its path."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    fd, path = tempfile.mkstemp(prefix=f"qgen-internal-error-{stamp}-", suffix=".txt")
    with os.fdopen(fd, "w") as fh:
        fh.write(f"command: {' '.join(sys.argv)}\n\n")
        fh.write("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    return path


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())  # a multi-line message stays on the one line
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
