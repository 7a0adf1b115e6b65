"""The end of a ``qgen`` process: what interpreter shutdown does that matters, without the slow rest.

Once a command has imported torch, Qiskit and SciPy, a normal interpreter shutdown spends 1-2 s
freeing thousands of module objects (measured 1.6 s on the 2-core development machine, ~5% of a
smoke experiment, and paid by every CLI call). A finished command needs none of it: its files are
written, flushed and closed. So this runs the parts of shutdown that can matter, in the order
CPython runs them, and then leaves with ``os._exit``:

1. ``threading._shutdown``: the callbacks registered with ``threading._register_atexit`` (they stop
   idle ``concurrent.futures`` workers) and a join of every non-daemon thread;
2. the ``atexit`` handlers (Ray's shutdown, logging's final flush, coverage);
3. a flush of stdout and stderr, Python's and the C library's (what compiled code printed).
"""

from __future__ import annotations

import atexit
import ctypes
import os
import sys
import threading


def exit_code(code: object) -> int:
    """``SystemExit.code`` as the exit status Python would give it (a message is printed, status 1)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def quick_exit(code: int) -> None:
    """Finish the process now, after threads, atexit handlers and stdio are done with."""
    shutdown_threads = getattr(threading, "_shutdown", None)
    if shutdown_threads is not None and threading.current_thread() is threading.main_thread():
        shutdown_threads()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (qgen ... | head) or a closed stream: nothing to save
            pass
    _flush_c_stdio()
    os._exit(code)


def _flush_c_stdio() -> None:
    """``fflush(NULL)``: the buffers of C's stdio (C++'s std::cout writes through them), which exit()
    would flush and ``os._exit`` does not."""
    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):  # no C library to load by that name (not Linux/macOS)
        pass


def run_and_exit(main) -> None:
    """Run ``main()`` as a whole process: its SystemExit becomes the status; other errors exit as usual."""
    try:
        main()
    except SystemExit as exc:
        quick_exit(exit_code(exc.code))
    quick_exit(0)
