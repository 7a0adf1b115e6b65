"""qgen's CPU thread rule: torch (and, inside experiment cells, every BLAS pool) runs $QGEN_THREADS
threads, default 1.

One, because the U-Net here is small: with 2 OpenMP threads on a 2-core machine that is also running
Aer or anything else, a 3x3 conv measured 50x slower than with 1 thread (spin-waiting), while an
idle machine gains little from the second thread on tensors this small.
"""

from __future__ import annotations

import os

from qgen.errors import QgenError

THREADS_ENV = "QGEN_THREADS"


def configured_threads() -> int:
    """$QGEN_THREADS as a positive integer (1 when unset); any other value is one QgenError."""
    value = os.environ.get(THREADS_ENV, "1")
    try:
        threads = int(value)
    except ValueError:
        threads = 0
    if threads < 1:
        raise QgenError(f"${THREADS_ENV} must be a positive whole number of CPU threads, got {value!r}")
    most = max_threads()
    if threads > most:
        # torch would start them all: the process runs out of memory maps and dies in a later import
        raise QgenError(f"${THREADS_ENV}={threads} is more threads than this machine's {os.cpu_count()} CPUs can "
                        f"run; use at most {most}")
    return threads


def max_threads() -> int:
    """More threads than CPUs only contend (see above); four times the CPUs leaves room for oversubscribed
    schedulers while refusing the absurd."""
    return 4 * (os.cpu_count() or 1)


def set_torch_threads() -> None:
    """torch's intra-op threads by the rule."""
    import torch  # deferred: the CLI imports this module at start-up, and torch is ~3.5 s of import

    torch.set_num_threads(configured_threads())
