"""One backend abstraction for training and sampling: transpile once, then build primitives.

``QuantumBackend(spec)`` turns a BackendSpec into
  * ``prepare(circuit)``: the ISA circuit (transpiled once, cached), its layout-mapped observables
    (EstimatorQNN never maps them itself) and, for fake devices, the reduction to active qubits;
  * ``estimator()`` / ``gradient()``: the primitive pair that evaluates the bottleneck;
  * ``make_qnn(circuit)``: the EstimatorQNN that TorchConnector wraps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from qiskit import QuantumCircuit
from qiskit.transpiler import generate_preset_pass_manager
from qiskit_machine_learning.neural_networks import EstimatorQNN

from qgen.backends.reduction import ReducedCircuit, active_qubits, observable_support, reduce_circuit
from qgen.backends.spec import BackendSpec
from qgen.circuits import QNNCircuit
from qgen.errors import QgenError

# Rates of the generic "depolarizing" noise model for kind = "aer", noise = "depolarizing".
DEPOLARIZING = {"p1": 1e-3, "p2": 1e-2, "readout": 2e-2}


@dataclass
class PreparedCircuit:
    """A circuit ready for one backend."""

    logical: QNNCircuit
    isa: QuantumCircuit                  # what a device receives (device-wide for fake/ibm)
    observables: tuple                   # layout-mapped to ``isa``
    executable: QuantumCircuit           # what the primitive runs (``isa`` or its reduction)
    executable_observables: tuple
    reduction: ReducedCircuit | None = None


@dataclass
class QuantumBackend:
    spec: BackendSpec
    local: bool = False                  # ibm kind only: run the runtime path on the fake device
    _prepared: dict = field(default_factory=dict, repr=False)
    _device: object = field(default=None, repr=False)
    _runtime: object = field(default=None, repr=False)
    _run_dir: tuple | None = field(default=None, repr=False)
    _journaled: list = field(default_factory=list, repr=False)

    # -- devices and transpilation -------------------------------------------------------------
    @property
    def device(self):
        """The BackendV2 that defines the ISA (fake or real IBM device); None for simulators."""
        if self._device is None and self.spec.kind in ("fake", "ibm"):
            from qgen.backends.devices import fake_backend

            if self.spec.kind == "fake":
                self._device = fake_backend(self.spec.device)
            else:
                self._device = self.runtime.backend
        return self._device

    @property
    def runtime(self):
        """qiskit-ibm-runtime service/backend/execution mode (kind ibm only), opened once."""
        if self._runtime is None:
            from qgen.backends.ibm import runtime_primitives

            self._runtime = runtime_primitives(self.spec, local=self.local)
        return self._runtime

    def attach_run_dir(self, run_dir: Path, shot_budget: int | None = None) -> None:
        """Journal jobs and charge the shot budget in ``run_dir`` (kind ibm; a no-op elsewhere)."""
        self._run_dir = (Path(run_dir), shot_budget)
        for primitive in self._journaled:
            primitive.attach(Path(run_dir), shot_budget)

    def _journal(self, primitive):
        self._journaled.append(primitive)
        if self._run_dir is not None:
            primitive.attach(*self._run_dir)
        return primitive

    @property
    def target(self):
        return self.device.target if self.device is not None else None

    def pass_manager(self):
        kwargs = dict(optimization_level=self.spec.optimization_level, seed_transpiler=self.spec.seed_transpiler)
        if self.device is not None:
            return generate_preset_pass_manager(backend=self.device, **kwargs)
        from qiskit_aer import AerSimulator

        return generate_preset_pass_manager(backend=AerSimulator(method=self.spec.method), **kwargs)

    def prepare(self, qnn_circuit: QNNCircuit) -> PreparedCircuit:
        key = qnn_circuit.name
        if key not in self._prepared:
            self._prepared[key] = self._prepare(qnn_circuit)
        return self._prepared[key]

    def _prepare(self, qc: QNNCircuit) -> PreparedCircuit:
        if self.spec.kind == "statevector":
            # qgen's own simulator runs the logical circuit: nothing to transpile or remap
            return PreparedCircuit(qc, qc.circuit, qc.observables, qc.circuit, qc.observables)
        isa = self.pass_manager().run(qc.circuit)
        observables = tuple(obs.apply_layout(isa.layout) for obs in qc.observables)
        if self.spec.kind == "fake":
            keep = active_qubits(isa, observable_support(observables))
            reduced = reduce_circuit(isa, keep)
            obs_small = tuple(reduced.reduce_observable(o) for o in observables)
            return PreparedCircuit(qc, isa, observables, reduced.circuit, obs_small, reduced)
        return PreparedCircuit(qc, isa, observables, isa, observables)

    # -- primitives ----------------------------------------------------------------------------
    def noise_model(self, prepared: PreparedCircuit | None = None):
        from qiskit_aer.noise import NoiseModel, ReadoutError, depolarizing_error

        if self.spec.kind == "fake":
            from qgen.backends.reduction import reduced_noise_model

            full = NoiseModel.from_backend(self.device)
            return reduced_noise_model(full, prepared.reduction.physical_qubits) if prepared else full
        if self.spec.kind == "aer" and self.spec.noise == "depolarizing":
            model = NoiseModel()
            model.add_all_qubit_quantum_error(depolarizing_error(DEPOLARIZING["p1"], 1), ["rx", "ry", "rz", "sx", "x"])
            model.add_all_qubit_quantum_error(depolarizing_error(DEPOLARIZING["p2"], 2), ["cx", "ecr", "cz"])
            r = DEPOLARIZING["readout"]
            model.add_all_qubit_readout_error(ReadoutError([[1 - r, r], [r, 1 - r]]))
            return model
        if self.spec.kind == "aer" and self.spec.noise != "ideal":
            raise QgenError(f"backend {self.spec.name!r}: unknown noise {self.spec.noise!r} "
                            "(kind aer accepts 'ideal' or 'depolarizing'; use kind = \"fake\" for device noise)")
        return None

    def estimator(self, prepared: PreparedCircuit | None = None):
        kind = self.spec.kind
        if kind == "statevector":
            from qgen.quantum import VectorizedStatevectorEstimator

            return VectorizedStatevectorEstimator(method=self.spec.method)
        if kind in ("aer", "fake"):
            from qiskit_aer.primitives import EstimatorV2 as AerEstimatorV2

            noise = self.noise_model(prepared)
            backend_options: dict = {"method": self._aer_method(prepared, noisy=noise is not None)}
            if noise is not None:
                backend_options["noise_model"] = noise
            run_options = {} if self.spec.seed_simulator is None else {"seed_simulator": self.spec.seed_simulator}
            return AerEstimatorV2(options={"default_precision": self.spec.precision,
                                           "backend_options": backend_options, "run_options": run_options})
        from qgen.backends.journaled import JournaledEstimator

        return self._journal(JournaledEstimator(self.runtime.estimator(), self.spec))

    def _aer_method(self, prepared: PreparedCircuit | None, *, noisy: bool) -> str:
        """Aer's simulation method; ``automatic`` is resolved here, not left to Aer.

        Noisy expectation values need the density matrix (one trajectory would be a sample). Ideal
        ones use a matrix product state where qgen's cost model says it is cheaper (chain-entangled
        circuits from ~9 qubits: 8.6x faster for the 16-qubit gradient, same values to 1e-10);
        otherwise Aer's own choice.
        """
        if self.spec.method != "automatic":
            return self.spec.method
        if noisy:
            return "density_matrix"
        if prepared is not None:
            from qgen.quantum.exact_estimator import prefers_mps

            if prefers_mps(prepared.executable):
                return "matrix_product_state"
        return "automatic"

    def simulation_method(self, qnn_circuit: QNNCircuit) -> str | None:
        """How this backend simulates the circuit: the exact method (``statevector`` or ``mps``)
        for kind statevector, Aer's method for kinds aer and fake, None for hardware."""
        if self.spec.kind == "statevector":
            from qgen.quantum.exact_estimator import choose_method

            return choose_method(qnn_circuit.circuit, self.spec.method)[0]
        if self.spec.kind in ("aer", "fake"):
            noisy = self.spec.kind == "fake" or self.spec.noise != "ideal"
            return self._aer_method(self.prepare(qnn_circuit), noisy=noisy)
        return None

    def sampler(self):
        """The runtime sampler, journaled (kind ibm)."""
        from qgen.backends.journaled import JournaledSampler

        return self._journal(JournaledSampler(self.runtime.sampler(), self.spec))

    def gradient(self, estimator):
        from qgen.quantum import BatchedParamShiftEstimatorGradient, ExactEstimatorGradient

        if self.spec.kind == "statevector":
            return ExactEstimatorGradient(estimator)
        return BatchedParamShiftEstimatorGradient(estimator, max_bindings_per_job=self.spec.max_bindings_per_job)

    def make_qnn(self, qnn_circuit: QNNCircuit) -> EstimatorQNN:
        prepared = self.prepare(qnn_circuit)
        estimator = self.estimator(prepared)
        if self.spec.kind == "statevector":
            # Compile now (cached for every later call): a circuit neither exact method can hold
            # fails here with one clear line, before any run directory exists.
            estimator.compiled_circuit(prepared.executable)
        return EstimatorQNN(
            circuit=prepared.executable,
            observables=list(prepared.executable_observables),
            input_params=list(qnn_circuit.input_params),
            weight_params=list(qnn_circuit.weight_params),
            estimator=estimator,
            gradient=self.gradient(estimator),
            input_gradients=True,
            default_precision=self.spec.precision,
        )


def initial_weights(num_weights: int, seed: int) -> np.ndarray:
    """Small seeded angles: a near-identity start that still has non-zero gradients."""
    return np.random.default_rng(seed).uniform(-np.pi / 4, np.pi / 4, num_weights)


def write_prepared_artifacts(backend: QuantumBackend, prepared: PreparedCircuit, root) -> Path:
    """circuits/<backend>/<name>/ for the circuit as the device (or simulator) receives it."""
    from qgen.backends.artifacts import circuit_stats, write_circuit_artifacts

    device = backend.device
    extra = {"backend_kind": backend.spec.kind, "observables": [
        [(label, [int(i) for i in idx], float(coeff.real)) for label, idx, coeff in o.to_sparse_list()]
        for o in prepared.observables]}
    if prepared.reduction is not None:
        extra["simulated_qubits"] = list(prepared.reduction.physical_qubits)
        extra["simulation"] = "Aer density matrix on the active qubits with the device noise model restricted to them"
    measured = set(prepared.reduction.physical_qubits) if prepared.reduction is not None else None
    stats = circuit_stats(
        prepared.isa,
        backend_name=backend.spec.device or backend.spec.name,
        backend_version=getattr(device, "backend_version", None),
        optimization_level=None if backend.spec.kind == "statevector" else backend.spec.optimization_level,
        seed_transpiler=None if backend.spec.kind == "statevector" else backend.spec.seed_transpiler,
        target=backend.target,
        measured=measured,
        extra=extra,
    )
    return write_circuit_artifacts(root, backend.spec.name, prepared.isa, stats)
