"""The backend interface: what training, sampling and the noise package ask of a backend kind.

One class per ``kind`` of backends.toml implements it (exact.py, aer.py, fake.py, ibm.py; the
registry maps kind -> class). As in qiskit-machine-learning's ``BaseEstimatorGradient``, the base
class owns validation and the shared logic, and a kind overrides only what differs:

  * ``prepare(circuit)``: the ISA circuit (transpiled once, cached), its layout-mapped observables
    (EstimatorQNN never maps them itself) and, where a kind reduces it, what the primitive runs;
  * ``estimator()`` / ``gradient()``: the primitive pair that evaluates the bottleneck, and
    ``make_qnn(circuit)``: the EstimatorQNN that TorchConnector wraps;
  * ``bit_sampling(entropy_circuit)``: the sampler and circuits that give quantum-noise bits;
  * ``attach_run_dir``: job journaling and shot-budget charging for kinds that spend shots;
  * ``describe()``: one row of ``qgen backends``;
  * capabilities callers test instead of the kind: ``spends_shots``, ``has_simulation_method``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from qgen.backends.circuit_key import prepared_key
from qgen.errors import QgenError

if TYPE_CHECKING:
    from qiskit import QuantumCircuit
    from qiskit.providers import BackendV2
    from qiskit.transpiler import StagedPassManager, Target
    from qiskit_machine_learning.neural_networks import EstimatorQNN

    from qgen.backends.bit_sampling import BitSampling, BitSamplingShape, EntropyCircuit
    from qgen.backends.reduction import ReducedCircuit
    from qgen.backends.spec import BackendSpec
    from qgen.circuits import QNNCircuit
    from qgen.rundir import RunDir

# Qiskit and what is built on it are imported in the methods that use them (deferred): the registry imports
# every kind's module for every command, and some need none of it. qgen info and the backends.toml checks
# need no Qiskit (~0.3 s of import after numpy, measured), classical and plain runs no
# qiskit-machine-learning (~0.2 s more).


@dataclass
class PreparedCircuit:
    """A circuit ready for one backend."""

    logical: QNNCircuit
    isa: QuantumCircuit                  # what a device receives (device-wide for fake/ibm)
    observables: tuple                   # layout-mapped to ``isa``
    executable: QuantumCircuit           # what the primitive runs (``isa`` or its reduction)
    executable_observables: tuple
    reduction: ReducedCircuit | None = None


def isa_pass_manager(spec: BackendSpec, backend: BackendV2 | None) -> StagedPassManager:
    """Transpile to ``backend``'s ISA; seeded so the layout (and thus the qubits used) is reproducible."""
    from qiskit.transpiler import generate_preset_pass_manager  # deferred: Qiskit (see the top)

    return generate_preset_pass_manager(
        optimization_level=spec.optimization_level, backend=backend, seed_transpiler=spec.seed_transpiler
    )


class QuantumBackend(ABC):
    """A named backend of one kind; see the module docstring for the interface."""

    #: The backends.toml ``kind`` this class implements.
    kind: ClassVar[str]
    #: Whether a spec of this kind must name an IBM device.
    needs_device: ClassVar[bool] = False
    #: Jobs run on hardware: each one is journaled and spends shots from the run's shot budget, so
    #: training and sampling check the budget against a plan before they start.
    spends_shots: ClassVar[bool] = False
    #: The kind simulates, so the run manifest can record how (``simulation_method``).
    has_simulation_method: ClassVar[bool] = False
    #: The kind transpiles circuits (with the spec's optimization_level and seed_transpiler).
    transpiles: ClassVar[bool] = True
    #: The kind can simulate with single-precision amplitudes (``simulation_precision = "single"``).
    has_single_precision: ClassVar[bool] = False

    def __init__(self, spec: BackendSpec, local: bool = False) -> None:
        spec = self.with_defaults(spec)
        self.validate_spec(spec)
        self.spec = spec
        self.local = local                # kind ibm only: run the runtime path on the fake device
        self._prepared: dict[tuple, PreparedCircuit] = {}  # prepared_key -> what it prepares to
        self._run_dir: tuple[RunDir, int | None] | None = None
        self._journaled: list[Any] = []
        self._on_journal_mismatch: str | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec.name!r}, local={self.local})"

    @classmethod
    def with_defaults(cls, spec: BackendSpec) -> BackendSpec:
        """``spec`` with what this kind fills in when backends.toml leaves it out (most kinds: nothing)."""
        return spec

    @classmethod
    def validate_spec(cls, spec: BackendSpec) -> None:
        """Refuse a spec this kind cannot run (one clear line). Kinds with more rules extend it."""
        if cls.needs_device and not spec.device:
            raise QgenError(f"backend {spec.name!r}: kind {spec.kind!r} needs a device name")
        if spec.simulation_precision != "double" and not cls.has_single_precision:
            raise QgenError(f"backend {spec.name!r}: simulation_precision must be 'double' for kind {spec.kind!r} "
                            f"(single precision: kind 'statevector' only)")

    # -- devices and transpilation -------------------------------------------------------------
    @property
    def device(self) -> BackendV2 | None:
        """The BackendV2 that defines the ISA (fake or real IBM device); None for simulators."""
        return None

    @property
    def target(self) -> Target | None:
        return self.device.target if self.device is not None else None

    def isa_backend(self) -> BackendV2 | None:
        """What circuits are transpiled for: the device, where there is one."""
        return self.device

    def pass_manager(self) -> StagedPassManager:
        return isa_pass_manager(self.spec, self.isa_backend())

    def prepare(self, qnn_circuit: QNNCircuit) -> PreparedCircuit:
        """The circuit ready for this backend, transpiled once per distinct circuit: the key is its
        content and parameter identities (circuit_key.py), never its name, and the transpile settings
        (a spec replaced on this object must not find circuits prepared under the old one)."""
        spec = self.spec
        key = ((self.kind, spec.device, self.local, spec.optimization_level, spec.seed_transpiler),
               prepared_key(qnn_circuit))
        if key not in self._prepared:
            self._prepared[key] = self._prepare(qnn_circuit)
        return self._prepared[key]

    def _prepare(self, qc: QNNCircuit) -> PreparedCircuit:
        self.check_width(qc)
        isa = self.pass_manager().run(qc.circuit)
        observables = tuple(obs.apply_layout(isa.layout) for obs in qc.observables)
        return PreparedCircuit(qc, isa, observables, isa, observables)

    def check_width(self, qc: QNNCircuit) -> None:
        """A circuit wider than the device is one line here, not a transpiler traceback (simulators
        have no device: what fits their memory is their own check)."""
        device = self.device
        have = getattr(device, "num_qubits", None) if device is not None else None
        need = qc.circuit.num_qubits
        if have is not None and need > have:
            raise QgenError(f"backend {self.spec.name}: the circuit needs {need} qubits but device "
                            f"{self.spec.device} has {have}; use --qubits {have} "
                            "or fewer")

    def planning_circuit(self, qnn_circuit: QNNCircuit) -> QuantumCircuit:
        """The circuit the estimator will run, for cost planning (kind ibm: without contacting IBM).
        Uncached: ``prepare``'s cache must keep the parameter objects of the QNN built from it."""
        return self._prepare(qnn_circuit).executable

    def close(self) -> None:
        """Release what the backend holds open (kind ibm: its Session or Batch). Idempotent."""

    # -- primitives ----------------------------------------------------------------------------
    def noise_model(self, prepared: PreparedCircuit | None = None):
        """The Aer noise model the estimator simulates; None where there is none."""
        return None

    @abstractmethod
    def estimator(self, prepared: PreparedCircuit | None = None):
        """The BaseEstimatorV2 that evaluates ``prepared.executable``."""

    def gradient(self, estimator):
        # deferred: qgen.quantum imports torch, Qiskit and qiskit-machine-learning (~1.9 s of import)
        from qgen.quantum import BatchedParamShiftEstimatorGradient

        return BatchedParamShiftEstimatorGradient(estimator, max_bindings_per_job=self.spec.max_bindings_per_job)

    def simulation_method(self, qnn_circuit: QNNCircuit) -> str | None:
        """How this backend simulates the circuit; None where it does not (hardware)."""
        return None

    def _check_runnable(self, estimator, prepared: PreparedCircuit) -> None:
        """Fail before training starts if ``estimator`` cannot run ``prepared``; most kinds find out
        only when they run."""

    def make_qnn(self, qnn_circuit: QNNCircuit) -> EstimatorQNN:
        from qiskit_machine_learning.neural_networks import EstimatorQNN  # deferred: see the top

        prepared = self.prepare(qnn_circuit)
        estimator = self.estimator(prepared)
        self._check_runnable(estimator, prepared)
        return EstimatorQNN(
            circuit=prepared.executable,
            observables=list(prepared.executable_observables),
            # the cached preparation's own parameter objects: a rebuilt circuit of the same name has
            # equal names but new Parameter objects, which the cached executable does not contain
            input_params=list(prepared.logical.input_params),
            weight_params=list(prepared.logical.weight_params),
            estimator=estimator,
            gradient=self.gradient(estimator),
            input_gradients=True,
            default_precision=self.spec.precision,
        )

    # -- journaling ------------------------------------------------------------------------------
    @property
    def on_journal_mismatch(self) -> str | None:
        """A journaled job that asked for the same under other settings (backends.toml edited between a
        kill and the resume): "reuse", "resubmit", or None (refuse and say so). The user's --journaled-jobs;
        set after the model is built, so it reaches the primitives already made."""
        return self._on_journal_mismatch

    @on_journal_mismatch.setter
    def on_journal_mismatch(self, choice: str | None) -> None:
        self._on_journal_mismatch = choice
        for primitive in self._journaled:
            primitive.on_mismatch = choice

    def reused_under_other_settings(self) -> list[dict]:
        """Journaled jobs whose results were reused although they ran under other settings (the user chose
        reuse): each with its id and the settings it ran with that differ from this backend's."""
        return [item for primitive in self._journaled for item in primitive.reused_under_other_settings]

    def attach_run_dir(self, run: RunDir, shot_budget: int | None = None) -> None:
        """Journal jobs and charge the shot budget in ``run`` (kinds that spend shots; a no-op
        elsewhere)."""
        self._run_dir = (run, shot_budget)
        for primitive in self._journaled:
            primitive.attach(run, shot_budget)

    def _journal(self, primitive):
        """Register a journaled primitive, so it records into the run directory once attached."""
        self._journaled.append(primitive)
        if self._run_dir is not None:
            primitive.attach(*self._run_dir)
        return primitive

    # -- quantum-noise bits ------------------------------------------------------------------------
    @abstractmethod
    def bit_sampling(self, entropy_circuit: EntropyCircuit) -> BitSampling:
        """The sampler and circuits that measure ``entropy_circuit`` for quantum noise."""

    @abstractmethod
    def bit_sampling_shape(self) -> BitSamplingShape:
        """Qubits per shot and whether extraction is needed, without building anything."""

    # -- inspection ----------------------------------------------------------------------------------
    def artifact_extras(self, prepared: PreparedCircuit) -> dict:
        """Kind-specific entries for the circuit's stats.json."""
        return {}

    def describe_device(self) -> tuple[str, str]:
        """(qubits, basis gates) for ``qgen backends``."""
        return "any", "any (no transpilation)"

    def describe_credentials(self) -> str:
        return "not needed"

    def describe(self) -> dict[str, str]:
        """One row of ``qgen backends``; never contacts IBM (fake twins know the device's size and gates)."""
        spec = self.spec
        qubits, gates = self.describe_device()
        shots = str(spec.shots) if spec.shots else (f"p={spec.precision:g}" if spec.precision else "exact")
        return {"qubits": qubits, "basis_gates": gates, "shots": shots,
                "budget": f"{spec.shot_budget:,}" if spec.shot_budget else "-",
                "credentials": self.describe_credentials()}


def initial_weights(num_weights: int, seed: int) -> np.ndarray:
    """Small seeded angles: a near-identity start that still has non-zero gradients."""
    return np.random.default_rng(seed).uniform(-np.pi / 4, np.pi / 4, num_weights)
