"""Kind ``aer``: Qiskit Aer primitives, ideal or with a generic depolarizing noise model.

The circuit is transpiled for an ``AerSimulator``; expectation values come from Aer's EstimatorV2
and gradients from batched parameter shifts. ``FakeDeviceBackend`` (fake.py) extends this class
with a device's ISA and noise.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from qgen.backends.aer_memory import check_fits_in_memory
from qgen.backends.aer_runs import run_bindings, thread_options
from qgen.backends.base import PreparedCircuit, QuantumBackend
from qgen.backends.bit_sampling import (
    IDEAL_SHAPE,
    BitSampling,
    BitSamplingShape,
    EntropyCircuit,
    aer_sampler_factory,
    ideal_bit_sampling,
)
from qgen.errors import QgenError

if TYPE_CHECKING:
    from qgen.circuits import QNNCircuit

# Aer (and Qiskit with it) is imported in the methods that use it, as in base.py: the registry imports this
# module for every command, and qgen info needs neither (~0.3 s of import after numpy, measured).

# Rates of the generic "depolarizing" noise model for kind = "aer", noise = "depolarizing".
DEPOLARIZING = {"p1": 1e-3, "p2": 1e-2, "readout": 2e-2}
#: Aer's simulation methods (qiskit-aer 0.18; ``tensor_network`` exists only in GPU builds, which
#: ``_check_runnable`` finds out before training starts).
AER_METHODS = ("automatic", "statevector", "density_matrix", "stabilizer", "matrix_product_state",
               "extended_stabilizer", "unitary", "superop", "tensor_network")
#: The noise models of kind aer (device noise is kind fake's).
AER_NOISE = ("ideal", "depolarizing")
#: Entropy-circuit width under a noise model: the density matrix (exact noisy sampling) costs 4**n.
NOISY_WIDTH = 8


class AerBackend(QuantumBackend):
    kind = "aer"
    has_simulation_method = True

    @classmethod
    def validate_spec(cls, spec) -> None:
        # checked when backends.toml is read: a typo must not surface as an AerError mid-training
        if spec.method not in AER_METHODS:
            raise QgenError(f"backend {spec.name!r}: method must be one of {', '.join(AER_METHODS)} "
                            f"for kind {cls.kind!r}, got {spec.method!r}")
        if cls.kind == "aer" and spec.noise not in AER_NOISE:  # else an entry `qgen backends` lists fails when used
            raise QgenError(f"backend {spec.name!r}: unknown noise {spec.noise!r}; noise must be "
                            f"{' or '.join(AER_NOISE)} for kind aer (kind = \"fake\" gives a device's noise)")
        super().validate_spec(spec)

    def _available_method(self) -> str:
        """The spec's method, if this qiskit-aer build has it (tensor_network needs a GPU build):
        found out when the first circuit is prepared, before training starts."""
        from qiskit_aer import AerSimulator  # deferred: see the top

        available = AerSimulator().available_methods()
        if self.spec.method not in available:
            raise QgenError(f"backend {self.spec.name!r}: method {self.spec.method!r} is not available in this "
                            f"qiskit-aer build (available: {', '.join(available)})")
        return self.spec.method

    @property
    def is_noisy(self) -> bool:
        """Whether the simulation carries a noise model."""
        return self.spec.noise != "ideal"

    def _prepare(self, qc: QNNCircuit) -> PreparedCircuit:
        # Aer binds run-time angles of controlled rotations wrongly (qgen.quantum.native_gates):
        # those gates reach it decomposed; the logical circuit stays the user's
        # deferred: qgen.quantum imports torch and qiskit-machine-learning (~1.9 s of import)
        from qgen.quantum.native_gates import without_misbound_controls

        safe = without_misbound_controls(qc.circuit)
        if safe is qc.circuit:
            return super()._prepare(qc)
        prepared = super()._prepare(replace(qc, circuit=safe))
        prepared.logical = qc
        return prepared

    def isa_backend(self):
        from qiskit_aer import AerSimulator  # deferred: see the top

        return AerSimulator(method=self._available_method())

    def noise_model(self, prepared: PreparedCircuit | None = None):
        if self.spec.noise == "depolarizing":
            from qiskit_aer.noise import NoiseModel, ReadoutError, depolarizing_error  # deferred: see the top

            model = NoiseModel()
            model.add_all_qubit_quantum_error(depolarizing_error(DEPOLARIZING["p1"], 1), ["rx", "ry", "rz", "sx", "x"])
            model.add_all_qubit_quantum_error(depolarizing_error(DEPOLARIZING["p2"], 2), ["cx", "ecr", "cz"])
            r = DEPOLARIZING["readout"]
            model.add_all_qubit_readout_error(ReadoutError([[1 - r, r], [r, 1 - r]]))
            return model
        if self.spec.noise != "ideal":
            raise QgenError(f"backend {self.spec.name!r}: unknown noise {self.spec.noise!r} "
                            "(kind aer accepts 'ideal' or 'depolarizing'; use kind = \"fake\" for device noise)")
        return None

    def estimator(self, prepared: PreparedCircuit | None = None):
        noise = self.noise_model(prepared)
        backend_options: dict = {"method": self._aer_method(prepared, noisy=noise is not None)}
        if noise is not None:
            backend_options["noise_model"] = noise
        return reseeded_aer_estimator(seed=self.spec.seed_simulator,
                                      options={"default_precision": self.spec.precision,
                                               "backend_options": backend_options})

    def _aer_method(self, prepared: PreparedCircuit | None, *, noisy: bool) -> str:
        """Aer's simulation method; ``automatic`` is resolved here, not left to Aer.

        Noisy expectation values need the density matrix (one trajectory would be a sample). Ideal
        ones use a matrix product state where qgen's cost model says it is cheaper (chain-entangled
        circuits from ~9 qubits: 8.6x faster for the 16-qubit gradient, same values to 1e-10);
        otherwise Aer's own choice.
        """
        if self.spec.method != "automatic":
            return self._available_method()
        if noisy:
            return "density_matrix"
        if prepared is not None:
            from qgen.quantum.exact_estimator import prefers_mps  # deferred: see _prepare

            if prefers_mps(prepared.executable):
                return "matrix_product_state"
        return "automatic"

    def _check_runnable(self, estimator, prepared: PreparedCircuit) -> None:
        # Aer checks memory only when it runs; a state that cannot fit is refused while the model is
        # built, before any run directory exists
        method = self._aer_method(prepared, noisy=self.is_noisy)
        check_fits_in_memory(method, prepared.executable.num_qubits, self.spec.name)

    def simulation_method(self, qnn_circuit: QNNCircuit) -> str:
        """Aer's method for this circuit."""
        return self._aer_method(self.prepare(qnn_circuit), noisy=self.is_noisy)

    def bit_sampling(self, entropy_circuit: EntropyCircuit) -> BitSampling:
        if not self.is_noisy:
            return ideal_bit_sampling(self.spec.name, entropy_circuit)
        factory = aer_sampler_factory(method="density_matrix", noise_model=self.noise_model())
        return BitSampling(factory, (entropy_circuit(NOISY_WIDTH),), name=f"{self.spec.name}:aer-noisy",
                           needs_extraction=True)

    def bit_sampling_shape(self) -> BitSamplingShape:
        return BitSamplingShape(NOISY_WIDTH, needs_extraction=True) if self.is_noisy else IDEAL_SHAPE

    def describe_device(self) -> tuple[str, str]:
        return "any", "Aer native gates"


def reseeded_aer_estimator(*, seed: int | None, options: dict):
    """Aer's EstimatorV2 with a fresh seed for every PUB of every call, run in pieces.

    With ``precision > 0`` Aer draws its Gaussian noise from ``run_options["seed_simulator"]``, one
    fixed seed: every call, and every PUB of a call (EstimatorQNN sends one per observable), got the
    same "noise". The seeds here are children of one ``SeedSequence(seed)``, spawned in call order,
    so calls differ and a run stays reproducible. The bindings of a PUB go to Aer in pieces
    (``aer_runs``: Aer's cost per binding grows with their number) and Aer runs qgen's threads.
    """
    # deferred: see the top
    from qiskit.primitives import PrimitiveResult
    from qiskit.primitives.containers import DataBin, PubResult
    from qiskit.quantum_info import Pauli
    from qiskit_aer.primitives import EstimatorV2 as AerEstimatorV2

    options = {**options, "backend_options": {**thread_options(), **options.get("backend_options", {})}}

    class ReseededAerEstimator(AerEstimatorV2):
        def __init__(self) -> None:
            super().__init__(options=options)
            self._seeds = np.random.SeedSequence(seed)

        def _run(self, pubs):
            # EstimatorQNN sends one PUB per observable, all with the same circuit and bindings:
            # each distinct (circuit, bindings) is simulated once, saving every Pauli its PUBs need
            bindings = [_bindings(pub) for pub in pubs]
            keys = [_key(pub, values) for pub, values in zip(pubs, bindings)]
            wanted: dict[tuple, set] = {}
            for pub, key in zip(pubs, keys):
                wanted.setdefault(key, set()).update(p for obs in pub.observables.ravel() for p in obs)
            data: dict[tuple, list[dict]] = {}
            results = []
            for pub, values, key, child in zip(pubs, bindings, keys, self._seeds.spawn(len(pubs))):
                self.options.run_options["seed_simulator"] = int(child.generate_state(1, dtype=np.uint32)[0])
                if key not in data:
                    data[key] = self._expectations(pub.circuit, values, sorted(wanted[key]))
                results.append(self._pub_result(pub, data[key]))
            return PrimitiveResult(results, metadata={"version": 2})

        def _expectations(self, circuit, values, paulis) -> list[dict]:
            circuit = circuit.copy()
            for pauli in paulis:
                circuit.save_expectation_value(Pauli(pauli), qubits=range(circuit.num_qubits), label=pauli)
            return run_bindings(self._backend, circuit, values, **self.options.run_options)

        def _pub_result(self, pub, data: list[dict]):
            # The arithmetic of qiskit-aer 0.18's EstimatorV2._run_pub (a labelled copy), over the
            # expectation values of each binding that ``_run`` simulated once for all PUBs sharing them
            shape = pub.parameter_values.shape
            flat = np.arange(len(data)).reshape(shape) if pub.circuit.num_parameters else np.zeros(shape, int)
            binding, obs_index = np.broadcast_arrays(flat, np.arange(pub.observables.size).reshape(pub.observables.shape))
            observables = pub.observables.ravel()
            evs = np.zeros(binding.shape, dtype=float)
            for index in np.ndindex(*binding.shape):
                found = data[binding[index]]
                for pauli, coeff in observables[obs_index[index]].items():
                    evs[index] += found[pauli] * coeff
            precision = pub.precision
            if precision > 0:
                rng = np.random.default_rng(self.options.run_options.get("seed_simulator"))
                evs = rng.normal(evs, precision, evs.shape)
            return PubResult(DataBin(evs=evs, stds=np.full(evs.shape, precision), shape=evs.shape),
                             metadata={"target_precision": precision, "circuit_metadata": pub.circuit.metadata})

    def _bindings(pub) -> np.ndarray:
        circuit = pub.circuit
        if not circuit.num_parameters:
            return np.zeros((1, 0))
        return pub.parameter_values.as_array(circuit.parameters).reshape(-1, circuit.num_parameters)

    def _key(pub, values: np.ndarray) -> tuple:
        return id(pub.circuit), values.shape, values.tobytes()

    return ReseededAerEstimator()
