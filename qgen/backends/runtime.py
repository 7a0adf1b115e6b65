"""The qiskit-ibm-runtime plumbing behind kind ``ibm`` (ibm.py): credentials, the service, and the
executor primitives on IBM hardware or (``--local``) on the device's fake snapshot.

qiskit-ibm-runtime >= 0.50 deprecates the server-side SamplerV2/EstimatorV2; the executor primitives
(``executor_estimator.Estimator`` / ``executor_sampler.Sampler``) prepare PUBs client-side and submit
one ``executor`` program per ``run``. Channel: ``ibm_quantum_platform``.

Beside it: their options (executor_options.py) and what those make a job cost (executor_cost.py),
the execution mode (execution_mode.py), and the ``--local`` primitives (local_worker.py: the active
qubits only, in a child process that Ctrl-C abandons at once).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import qiskit_ibm_runtime
from qiskit.primitives import BaseEstimatorV2, BaseSamplerV2
from qiskit_ibm_runtime.executor_estimator import Estimator
from qiskit_ibm_runtime.executor_sampler import Sampler

from qgen.backends.base import isa_pass_manager
from qgen.backends.devices import (
    canonical_device_name,
    check_not_retired,
    fake_backend,
    fake_backend_name,
)
from qgen.backends.execution_mode import instance_plan, open_execution_mode
from qgen.backends.executor_options import estimator_options, sampler_options
from qgen.backends.local_worker import LocalDevice, LocalExecutorEstimator, LocalExecutorSampler
from qgen.backends.spec import BackendSpec
from qgen.errors import QgenError, first_line

if TYPE_CHECKING:
    from qiskit.providers import BackendV2
    from qiskit.transpiler import StagedPassManager
    from qiskit_ibm_runtime import Batch, QiskitRuntimeService, Session

CHANNEL = "ibm_quantum_platform"
TOKEN_ENV = "QISKIT_IBM_TOKEN"
INSTANCE_ENV = "QISKIT_IBM_INSTANCE"


# --------------------------------------------------------------------------------------- credentials


@dataclass(frozen=True)
class Credentials:
    """Where the IBM Quantum token comes from; found without touching the network."""

    source: str  # "environment" or "saved account 'NAME'"
    token: str | None = field(default=None, repr=False)
    instance: str | None = None
    account_name: str | None = None


def find_credentials() -> Credentials:
    """$QISKIT_IBM_TOKEN (+ $QISKIT_IBM_INSTANCE), else a saved ibm_quantum_platform account.

    Checked before anything contacts IBM, so a machine without credentials fails at once instead of
    hanging on a network call.
    """
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        return Credentials("environment", token=token, instance=os.environ.get(INSTANCE_ENV) or None)
    try:
        # the service class is looked up on the package when used (tests put a stand-in there)
        accounts = qiskit_ibm_runtime.QiskitRuntimeService.saved_accounts(channel=CHANNEL)
    except Exception as exc:  # a corrupt ~/.qiskit/qiskit-ibm.json raises ValueError
        raise QgenError(f"cannot read saved IBM Quantum accounts: {first_line(exc)}") from None
    if accounts:
        name = next((n for n, acc in accounts.items() if acc.get("is_default_account")), None)
        name = name or next(iter(accounts))
        return Credentials(f"saved account {name!r}", instance=accounts[name].get("instance"), account_name=name)
    raise QgenError(
        f"no IBM Quantum credentials: save an account with QiskitRuntimeService.save_account("
        f"channel='{CHANNEL}', token=..., instance=...) or set {TOKEN_ENV} and {INSTANCE_ENV}; "
        "or pass --local to run on the device's fake backend"
    )


def runtime_service(spec: BackendSpec) -> QiskitRuntimeService:
    """A QiskitRuntimeService on channel ibm_quantum_platform, or one clear error line."""
    service_cls = qiskit_ibm_runtime.QiskitRuntimeService  # looked up when used, as in find_credentials
    credentials = find_credentials()
    try:
        if credentials.token:
            return service_cls(channel=CHANNEL, token=credentials.token, instance=credentials.instance)
        return service_cls(channel=CHANNEL, name=credentials.account_name)
    except Exception as exc:
        raise QgenError(
            f"backend {spec.name!r}: could not connect to IBM Quantum ({CHANNEL}) with the "
            f"{credentials.source}: {first_line(exc)}; check the network, token and instance, or pass --local"
        ) from None


# --------------------------------------------------------------------------------------- primitives


class RuntimePrimitives:
    """The backend, its execution mode, and factories for executor primitives configured from a spec.

    The Session/Batch (``open_mode``) is opened only when a primitive first submits a job: commands that
    only transpile (``qgen circuits``), plan (``--dry-run``) or refuse before running anything never open
    one. Use as a context manager (or call close()) so an opened one is closed when the run ends.
    ``primitive_classes`` (estimator, sampler) replace the executor classes (tests: a stand-in service).
    """

    def __init__(
        self,
        spec: BackendSpec,
        backend: BackendV2,
        *,
        mode: Session | Batch | None = None,
        open_mode: Any = None,
        service: QiskitRuntimeService | None = None,
        local_device: LocalDevice | None = None,
        primitive_classes: tuple[Any, Any] | None = None,
    ) -> None:
        self.spec = spec
        self.backend = backend
        self.mode = mode
        self._open_mode = open_mode
        self.service = service
        self._local_device = local_device
        self._classes = primitive_classes

    def _execution_mode(self) -> Any:
        """The Session/Batch, opened now if it is still to be opened; None in job mode."""
        if self.mode is None and self._open_mode is not None:
            opener, self._open_mode = self._open_mode, None
            self.mode = opener()
        return self.mode

    def _primitive(self, which: int, options: Any) -> Any:
        cls = (Estimator, Sampler)[which] if self._classes is None else self._classes[which]
        if self._open_mode is None:  # job mode, or the mode is open already
            return cls(mode=self.mode or self.backend, options=options)
        return OnFirstRun(lambda: cls(mode=self._execution_mode() or self.backend, options=options), options)

    @property
    def local(self) -> bool:
        return self._local_device is not None

    def pass_manager(self) -> StagedPassManager:
        return isa_pass_manager(self.spec, self.backend)

    def estimator(self) -> BaseEstimatorV2:
        if self._local_device is not None:
            return LocalExecutorEstimator(self._local_device, estimator_options(self.spec))
        return self._primitive(0, estimator_options(self.spec))

    def sampler(self) -> BaseSamplerV2:
        if self._local_device is not None:
            return LocalExecutorSampler(self._local_device, sampler_options(self.spec))
        return self._primitive(1, sampler_options(self.spec))

    def usage_estimator(self) -> BaseEstimatorV2:
        """An estimator for ``dry_run`` usage estimates: in job mode, never in a Session/Batch (a dry run
        runs no jobs, so it opens none)."""
        cls = Estimator if self._classes is None else self._classes[0]
        return cls(mode=self.backend, options=estimator_options(self.spec))

    def close(self) -> None:
        """Close the Session/Batch if one was opened (and the local ones); safe to call more than once."""
        mode, self.mode, self._open_mode = self.mode, None, None
        if mode is not None:
            mode.close()
        if self._local_device is not None:
            self._local_device.close()

    def __enter__(self) -> RuntimePrimitives:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def runtime_primitives(spec: BackendSpec, *, local: bool) -> RuntimePrimitives:
    """Executor primitives for ``spec.device``: on IBM hardware, or (local=True) on its fake backend."""
    if not spec.device:
        raise QgenError(f"backend {spec.name!r}: an IBM backend needs a device name")
    device = canonical_device_name(spec.device)
    estimator_options(spec)  # refuse unsupported options before anything is contacted
    check_not_retired(device, allow_local=local)
    if local:
        fake = fake_backend(device)
        return RuntimePrimitives(spec, fake,
                                 local_device=LocalDevice(fake, spec.execution_mode, seed=spec.seed_simulator))

    service = runtime_service(spec)
    try:
        backend = service.backend(device)
    except Exception as exc:
        fake = fake_backend_name(device)
        hint = f" or pass --local to run on {fake}" if fake else ""
        raise QgenError(f"device {device} is not available to this account ({first_line(exc)}){hint}") from None

    def open_mode():  # on the first job (RuntimePrimitives): not for transpiling, planning or refusing
        plan = instance_plan(service) if spec.execution_mode == "session" else None
        return open_execution_mode(spec.execution_mode, backend, plan=plan)

    return RuntimePrimitives(spec, backend, open_mode=None if spec.execution_mode == "job" else open_mode,
                             service=service)


class OnFirstRun:
    """A primitive made (and its Session/Batch opened) when it first submits a job."""

    def __init__(self, make: Any, options: Any) -> None:
        self._make, self._primitive, self.options = make, None, options

    def run(self, *args: Any, **kwargs: Any) -> Any:
        if self._primitive is None:
            self._primitive = self._make()
        return self._primitive.run(*args, **kwargs)


def service_usage_estimate(estimator: Any, pubs: list) -> float:
    """The service's QPU-seconds estimate for ``estimator.run(pubs)``, from a ``dry_run=True`` job
    (qiskit-ibm-runtime runs it on the device's mock twin: mock results, no shots spent)."""
    try:
        job = estimator.run(pubs, dry_run=True)
        seconds = job.usage_estimation.get("quantum_seconds")
    except Exception as exc:
        raise QgenError(f"the usage estimate failed: {first_line(exc)}") from None
    if seconds is None:
        raise QgenError("the service returned no usage estimate")
    return float(seconds)

