"""Local (``--local``) executor jobs: the active qubits only, in a child process that Ctrl-C can abandon.

``LocalExecutorEstimator`` / ``LocalExecutorSampler`` are the executor primitives of ``--local`` runs:
same options and job objects as on hardware, run by ``LocalDevice`` on the device's fake snapshot.
Locally, ``Executor.run`` hands the prepared program to ``QiskitRuntimeLocalService._run_executor``,
which simulates it with qiskit-aer's ``SamplerV2`` built from whatever backend the primitive was given.

Two problems of running qiskit-ibm-runtime's executor primitives on a fake device in-process:

* **width**: the executor measures every qubit of its circuit, so the device-wide ISA circuit (127
  or 156 qubits) made Aer simulate the whole device, shot by shot (one 4096-shot job took 80 min).
  Here every PUB is cut down to the qubits any PUB of the job touches, on a device reduced to them
  (``reduction.reduced_backend``: the same target, errors and qubit properties, renumbered), before
  the executor sees it. Idle qubits carry no gates and no observable weight, so nothing the job
  returns changes; observables and classical registers keep their meaning.
* **interrupts**: the local job runs in a thread pool inside qiskit-ibm-runtime, and Aer holds the
  GIL while it simulates (measured: the main thread ran twice in 30 s), so Ctrl-C was not seen
  until the simulation ended, and exit then waited for the pool thread. Here the job runs in one
  child process (started once, reused by later jobs); the parent waits in short polls, and on
  Ctrl-C (or any exception) it kills the child and re-raises at once. The job journal already holds
  the job's ``submitted`` line and nothing else, so a resumed run resubmits it (local results exist
  only once stored).
"""

from __future__ import annotations

import multiprocessing
import signal
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from qiskit.primitives import BaseEstimatorV2, BaseSamplerV2
from qiskit.primitives.containers.estimator_pub import EstimatorPub
from qiskit.primitives.containers.sampler_pub import SamplerPub
from qiskit.providers import JobStatus
from qiskit.quantum_info import SparsePauliOp
from qiskit_aer import AerSimulator
from qiskit_aer.noise import NoiseModel
from qiskit_ibm_runtime.executor_estimator import Estimator
from qiskit_ibm_runtime.executor_sampler import Sampler

from qgen.backends.devices import fake_backend
from qgen.backends.execution_mode import open_execution_mode
from qgen.backends.reduced_device import with_calibrated_readout
from qgen.backends.reduction import (
    active_qubits,
    observable_support,
    reduce_circuit,
    reduce_observables_array,
    reduced_backend,
)
from qgen.errors import QgenError, named_first_line

if TYPE_CHECKING:
    from qiskit.providers import BackendV2
    from qiskit_ibm_runtime.options_models import EstimatorOptions, SamplerOptions

#: Reduced widths up to this are simulated as a density matrix (exact noise, cost independent of
#: shots); wider ones (e.g. an entropy circuit on every device qubit) as a matrix product state.
DENSITY_MATRIX_MAX_QUBITS = 10
#: How often the waiting parent checks for the result (and so how fast it notices Ctrl-C).
POLL_SECONDS = 0.2


@dataclass(frozen=True)
class LocalTask:
    """One local executor job: what the child needs to build the reduced device and run the PUBs."""

    kind: str                      # "estimator" or "sampler"
    device: str                    # the fake device, e.g. "ibm_fez"
    qubits: tuple[int, ...]        # device qubits kept, in order (reduced index -> device qubit)
    execution_mode: str
    options: Any                   # EstimatorOptions / SamplerOptions, seed_simulator already set
    pubs: list                     # coerced PUBs on the reduced qubits
    precision: float | None = None
    shots: int | None = None


def reduce_estimator_pubs(pubs: list) -> tuple[tuple[int, ...], list]:
    """(kept device qubits, the PUBs on them) for coerced EstimatorPubs of one job."""
    keep: set[int] = set()
    for pub in pubs:
        keep.update(active_qubits(pub.circuit))
        keep.update(observable_support([_as_sparse_pauli(o) for o in pub.observables.ravel().tolist()]))
    kept = tuple(sorted(keep))
    circuits: dict[int, Any] = {}
    reduced = []
    for pub in pubs:
        if id(pub.circuit) not in circuits:
            circuits[id(pub.circuit)] = reduce_circuit(pub.circuit, kept).circuit
        reduced.append(EstimatorPub(circuits[id(pub.circuit)], reduce_observables_array(pub.observables, kept),
                                    pub.parameter_values, pub.precision, validate=False))
    return kept, reduced


def reduce_sampler_pubs(pubs: list) -> tuple[tuple[int, ...], list]:
    """(kept device qubits, the PUBs on them) for coerced SamplerPubs of one job."""
    kept = tuple(sorted({q for pub in pubs for q in active_qubits(pub.circuit)}))
    return kept, [SamplerPub(reduce_circuit(pub.circuit, kept).circuit, pub.parameter_values, pub.shots,
                             validate=False) for pub in pubs]


def _as_sparse_pauli(obs: dict):
    return SparsePauliOp.from_list(list(obs.items()))


# ------------------------------------------------------------------------------------ the child


def run_task(task: LocalTask, cache: dict | None = None) -> Any:
    """Run one task in this process (the child calls this; tests may too)."""
    cache = {} if cache is None else cache
    key = (task.device, task.qubits, task.execution_mode)
    if key not in cache:
        fake = cache.get(task.device) or cache.setdefault(task.device, fake_backend(task.device))
        method = "density_matrix" if len(task.qubits) <= DENSITY_MATRIX_MAX_QUBITS else "matrix_product_state"
        reduced = reduced_backend(fake, task.qubits)
        # the device's calibrated, asymmetric readout (Aer's from_backend makes it symmetric)
        noise = with_calibrated_readout(NoiseModel.from_backend(reduced), fake, task.qubits)
        simulator = AerSimulator.from_backend(reduced, method=method, noise_model=noise)
        cache[key] = open_execution_mode(task.execution_mode, simulator) or simulator
    mode = cache[key]
    if task.kind == "estimator":
        return Estimator(mode=mode, options=task.options).run(task.pubs, precision=task.precision).result()
    return Sampler(mode=mode, options=task.options).run(task.pubs, shots=task.shots).result()


def _child_main(conn) -> None:
    # Ctrl-C in a terminal reaches the whole process group: the parent decides, the child just dies
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    cache: dict = {}
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        try:
            conn.send(("ok", run_task(task, cache)))
        except Exception as exc:  # sent back: the parent raises it as one clear line
            conn.send(("error", named_first_line(exc)))


# ----------------------------------------------------------------------------------- the parent


class LocalWorker:
    """The child process that runs local jobs, started on the first job and again after a kill."""

    def __init__(self) -> None:
        self._process = None
        self._conn = None

    def submit(self, task: LocalTask) -> LocalJob:
        if self._process is None or not self._process.is_alive():
            # spawn, not fork: the parent has torch and OpenMP threads, which fork does not copy safely
            context = multiprocessing.get_context("spawn")
            self._conn, child_conn = context.Pipe()
            self._process = context.Process(target=_child_main, args=(child_conn,), daemon=True,
                                            name="qgen-local-executor")
            self._process.start()
            child_conn.close()
        self._conn.send(task)
        return LocalJob(self, f"local-{uuid.uuid4().hex[:16]}")

    def wait(self) -> Any:
        while not self._conn.poll(POLL_SECONDS):
            if not self._process.is_alive():
                raise QgenError(f"the local simulator process died (exit code {self._process.exitcode})")
        status, payload = self._conn.recv()
        if status == "error":
            raise QgenError(f"local executor job failed: {payload}")
        return payload

    def kill(self) -> None:
        if self._process is not None and self._process.is_alive():
            self._process.kill()
            self._process.join(timeout=5)
        self._process = None
        self._conn = None

    close = kill


class LocalJob:
    """A local job's handle: ``job_id`` at once, ``result`` waits (interruptible), like a runtime job."""

    def __init__(self, worker: LocalWorker, job_id: str) -> None:
        self._worker = worker
        self._job_id = job_id
        self._result = None

    def job_id(self) -> str:
        return self._job_id

    def result(self) -> Any:
        if self._result is None:
            try:
                self._result = self._worker.wait()
            except BaseException:
                self._worker.kill()  # Ctrl-C, or a failure: abandon the simulation at once
                raise
        return self._result

    def status(self):
        return JobStatus.DONE if self._result is not None else JobStatus.RUNNING

    def done(self) -> bool:
        return self._result is not None


# -------------------------------------------------------------------- the primitives of --local runs


class LocalDevice:
    """Runs executor primitives on a fake device, on the active qubits, in a child process that
    Ctrl-C can abandon (``LocalWorker``). Each job gets a fresh simulator seed: a child of one
    ``SeedSequence(seed_simulator)``, so jobs differ while a run stays reproducible.

    The execution mode (Batch/Session) is opened on the reduced simulator inside the child, so the
    mode code path is the same as on hardware (qiskit-ibm-runtime ignores it locally; jobs run at once).
    """

    def __init__(self, fake: BackendV2, execution_mode: str, seed: int | None = None) -> None:
        self.fake = fake
        self.execution_mode = execution_mode
        self._worker = LocalWorker()
        self._seeds = np.random.SeedSequence(seed)

    def submit(self, kind: str, options: Any, reduced: tuple[tuple[int, ...], list], **run_args: Any) -> LocalJob:
        options = options.model_copy(deep=True)
        options.simulator.seed_simulator = int(self._seeds.spawn(1)[0].generate_state(1, dtype=np.uint32)[0])
        qubits, pubs = reduced
        return self._worker.submit(LocalTask(kind, self.fake.name, qubits, self.execution_mode, options, pubs,
                                             **run_args))

    def close(self) -> None:
        self._worker.close()


class LocalExecutorEstimator(BaseEstimatorV2):
    """The executor Estimator on a fake device (see LocalDevice); same options and job objects."""

    def __init__(self, device: LocalDevice, options: EstimatorOptions) -> None:
        super().__init__()
        self._device = device
        self.options = options

    def backend(self) -> BackendV2:
        return self._device.fake

    def run(self, pubs: Iterable[Any], *, precision: float | None = None) -> LocalJob:
        coerced = [EstimatorPub.coerce(pub, precision) for pub in pubs]
        return self._device.submit("estimator", self.options, reduce_estimator_pubs(coerced), precision=precision)


class LocalExecutorSampler(BaseSamplerV2):
    """The executor Sampler on a fake device (see LocalDevice); same options and job objects."""

    def __init__(self, device: LocalDevice, options: SamplerOptions) -> None:
        super().__init__()
        self._device = device
        self.options = options

    def backend(self) -> BackendV2:
        return self._device.fake

    def run(self, pubs: Iterable[Any], *, shots: int | None = None) -> LocalJob:
        coerced = [SamplerPub.coerce(pub, shots) for pub in pubs]
        return self._device.submit("sampler", self.options, reduce_sampler_pubs(coerced), shots=shots)
