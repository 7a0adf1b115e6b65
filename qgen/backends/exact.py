"""Kind ``statevector``: qgen's own exact estimator (vectorized statevector or untruncated MPS).

The logical circuit runs as it is (nothing to remap) and gradients are exact; a gate the simulators
have no kernel for is first translated into their gate set (``qgen.quantum.native_gates``, said
once). The method ("automatic", "statevector", "mps") is chosen per circuit by ``qgen.quantum``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from qgen.backends.base import PreparedCircuit, QuantumBackend
from qgen.backends.bit_sampling import IDEAL_SHAPE, BitSampling, BitSamplingShape, EntropyCircuit, ideal_bit_sampling
from qgen.errors import QgenError

if TYPE_CHECKING:
    from qgen.backends.spec import BackendSpec
    from qgen.circuits import QNNCircuit

EXACT_METHODS = ("automatic", "statevector", "mps")  # qgen's exact estimator


class ExactBackend(QuantumBackend):
    kind = "statevector"
    has_simulation_method = True
    transpiles = False
    has_single_precision = True

    @classmethod
    def validate_spec(cls, spec: BackendSpec) -> None:
        if spec.method not in EXACT_METHODS:
            raise QgenError(
                f"backend {spec.name!r}: method must be one of {', '.join(EXACT_METHODS)} "
                f"for kind {cls.kind!r}, got {spec.method!r}"
            )
        super().validate_spec(spec)

    def _prepare(self, qc: QNNCircuit) -> PreparedCircuit:
        # qgen's own simulator runs the logical circuit: nothing to remap, and nothing to transpile
        # unless a gate has no kernel (basis translation only: qubits and observables are unchanged)
        from qgen.quantum.native_gates import to_native

        circuit = to_native(qc.circuit)
        return PreparedCircuit(qc, circuit, qc.observables, circuit, qc.observables)

    def estimator(self, prepared: PreparedCircuit | None = None):
        from qgen.quantum import VectorizedStatevectorEstimator

        # single precision: complex64 amplitudes (~1e-6 in expectation values and gradients), as
        # precise as the float32 U-Net that consumes them, and ~25% less circuit time
        dtype = np.complex64 if self.spec.simulation_precision == "single" else np.complex128
        return VectorizedStatevectorEstimator(method=self.spec.method, dtype=dtype)

    def gradient(self, estimator):
        from qgen.quantum import ExactEstimatorGradient

        return ExactEstimatorGradient(estimator)

    def _check_runnable(self, estimator, prepared: PreparedCircuit) -> None:
        # Compile now (cached for every later call): a circuit neither exact method can hold
        # fails here with one clear line, before any run directory exists.
        estimator.compiled_circuit(prepared.executable)

    def simulation_method(self, qnn_circuit: QNNCircuit) -> str:
        """The exact method (``statevector`` or ``mps``) for this circuit."""
        from qgen.quantum.exact_estimator import choose_method

        return choose_method(self.prepare(qnn_circuit).executable, self.spec.method)[0]

    def bit_sampling(self, entropy_circuit: EntropyCircuit) -> BitSampling:
        return ideal_bit_sampling(self.spec.name, entropy_circuit)

    def bit_sampling_shape(self) -> BitSamplingShape:
        return IDEAL_SHAPE
