"""The execution mode of qiskit-ibm-runtime jobs (job, batch or session), opened the same way on IBM
hardware (runtime.py) and on a ``--local`` reduced simulator (local_worker.py's child process).
Only kind ``ibm`` imports this module (through runtime.py), and it needs qiskit-ibm-runtime anyway.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from qiskit_ibm_runtime import Batch, Session
from qiskit_ibm_runtime.exceptions import IBMError

from qgen.errors import QgenError, first_line

if TYPE_CHECKING:
    from qiskit.providers import BackendV2
    from qiskit_ibm_runtime import QiskitRuntimeService


class ExecutionModeFallback(UserWarning):
    """The requested execution mode could not be opened; a weaker one is used instead."""


def open_execution_mode(
    mode: str,
    backend: BackendV2,
    *,
    plan: str | None = None,
    session_cls: Any = None,
    batch_cls: Any = None,
) -> Session | Batch | None:
    """job -> None (each run is its own job), batch -> Batch, session -> Session.

    The open plan cannot open sessions: we then run in batch mode and say so with an
    ExecutionModeFallback warning (stderr), rather than failing a long run at its first job.
    ``session_cls``/``batch_cls`` default to qiskit_ibm_runtime's and are injectable for tests.
    """
    session_cls = session_cls or Session
    batch_cls = batch_cls or Batch
    name = getattr(backend, "name", str(backend))
    if mode == "job":
        return None
    if mode == "batch":
        return batch_cls(backend=backend)
    if mode != "session":
        raise QgenError(f"unknown execution_mode {mode!r}; choose job, batch or session")
    if plan is not None and plan.lower() == "open":
        warnings.warn(
            f"sessions are not available on the open plan; running on {name} in batch mode instead",
            ExecutionModeFallback,
            stacklevel=2,
        )
        return batch_cls(backend=backend)
    try:
        return session_cls(backend=backend)
    except IBMError as exc:
        warnings.warn(
            f"could not open a session on {name} ({first_line(exc)}); running in batch mode instead "
            "(sessions need a paid plan)",
            ExecutionModeFallback,
            stacklevel=2,
        )
        return batch_cls(backend=backend)


def instance_plan(service: QiskitRuntimeService) -> str | None:
    """The plan ('open', 'premium', ...) of the service's active instance, None if it cannot tell."""
    try:
        active = service.active_instance()
        for instance in service.instances():
            if instance.get("crn") == active:
                return instance.get("plan")
    except Exception:  # plan lookup is advisory: opening the session decides
        return None
    return None

