"""Kind ``fake``: Aer with a fake IBM device's ISA and noise model, simulated on the active qubits.

The circuit is transpiled to the device (device-wide ISA, as hardware would receive it); the
estimator then simulates only the qubits it touches, with the device noise model restricted to
them (reduction.py), and returns what the device would measure: readout error and shot noise at
the spec's ``shots`` or ``precision``, fresh on every call (shot_estimator.py). Quantum-noise bits come from a few device qubits with their own calibrated
noise (reduced_device.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qgen.backends.aer import AerBackend
from qgen.backends.base import PreparedCircuit
from qgen.backends.bit_sampling import BitSampling, BitSamplingShape, EntropyCircuit
from qgen.backends.devices import describe_device, fake_backend

if TYPE_CHECKING:
    from qiskit.providers import BackendV2

    from qgen.circuits import QNNCircuit

# Aer, Qiskit and the modules built on them (reduction, shot_estimator, reduced_device) are imported in the
# methods that use them, as in base.py: the registry imports this module for every command, and qgen info
# needs none of them (~0.3 s of import after numpy, measured).

#: Entropy qubits of the reduced device: its density-matrix simulation stays exact up to here.
BITS_WIDTH = 10


class FakeDeviceBackend(AerBackend):
    kind = "fake"
    needs_device = True

    def __init__(self, spec, local: bool = False) -> None:
        super().__init__(spec, local)
        self._device: BackendV2 | None = None

    @property
    def device(self) -> BackendV2:
        if self._device is None:
            self._device = fake_backend(self.spec.device)
        return self._device

    @property
    def is_noisy(self) -> bool:
        return True

    def isa_backend(self) -> BackendV2:
        return self.device

    def _prepare(self, qc: QNNCircuit) -> PreparedCircuit:
        from qgen.backends.reduction import active_qubits, observable_support, reduce_circuit  # deferred

        full = super()._prepare(qc)
        keep = active_qubits(full.isa, observable_support(full.observables))
        reduced = reduce_circuit(full.isa, keep)
        obs_small = tuple(reduced.reduce_observable(o) for o in full.observables)
        return PreparedCircuit(qc, full.isa, full.observables, reduced.circuit, obs_small, reduced)

    def estimator(self, prepared: PreparedCircuit | None = None):
        """Device statistics on the reduced circuit: gate noise, readout error and shot noise at the
        spec's shots (or precision); exact (the infinite-shot limit) when it gives neither."""
        from qgen.backends.shot_estimator import ShotNoiseEstimator  # deferred

        return ShotNoiseEstimator(self.noise_model(prepared), shots=self.spec.shots_per_binding,
                                  seed=self.spec.seed_simulator)

    def noise_model(self, prepared: PreparedCircuit | None = None):
        # deferred
        from qiskit_aer.noise import NoiseModel

        from qgen.backends.reduced_device import with_calibrated_readout
        from qgen.backends.reduction import reduced_noise_model

        full = with_calibrated_readout(NoiseModel.from_backend(self.device), self.device)
        return reduced_noise_model(full, prepared.reduction.physical_qubits) if prepared else full

    def bit_sampling(self, entropy_circuit: EntropyCircuit) -> BitSampling:
        from qgen.backends.reduced_device import reduce_device  # deferred

        device = self.device
        return reduce_device(device, tuple(range(min(BITS_WIDTH, device.num_qubits))), entropy_circuit).bit_sampling()

    def bit_sampling_shape(self) -> BitSamplingShape:
        return BitSamplingShape(min(BITS_WIDTH, self.device.num_qubits), needs_extraction=True)

    def artifact_extras(self, prepared: PreparedCircuit) -> dict:
        return {"simulated_qubits": list(prepared.reduction.physical_qubits),
                "simulation": "Aer density matrix on the active qubits with the device noise model restricted to them"}

    def describe_device(self) -> tuple[str, str]:
        return describe_device(self.spec.device)
