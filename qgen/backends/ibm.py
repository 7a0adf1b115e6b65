"""Kind ``ibm``: IBM Quantum hardware through qiskit-ibm-runtime (or, with ``--local``, the same
executor primitives on the device's fake snapshot). The runtime plumbing is in runtime.py.

Every job is journaled in the run directory and charged to the run's shot budget (journaled.py),
so training and sampling plan their shots before they start (``spends_shots``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from qgen.backends.base import PreparedCircuit, QuantumBackend, isa_pass_manager
from qgen.backends.bit_sampling import BitSampling, BitSamplingShape, EntropyCircuit, fixed_sampler
from qgen.backends.devices import describe_device, fake_backend, retirement_note
from qgen.errors import QgenError

if TYPE_CHECKING:
    from qiskit.providers import BackendV2

    from qgen.backends.runtime import RuntimePrimitives
    from qgen.backends.spec import BackendSpec

# runtime.py and journaled.py are imported in the methods that use them (deferred): the registry imports
# this module for every command, and they import qiskit-ibm-runtime (runtime.py, ~0.9 s of import after
# Qiskit, measured) and Qiskit (~0.3 s), which only this kind needs (Qiskit: see base.py).

#: Shots per binding when backends.toml gives neither shots nor precision: qiskit-ibm-runtime's
#: own default for the sampler and the estimator.
DEFAULT_SHOTS = 4096


class IBMBackend(QuantumBackend):
    kind = "ibm"
    needs_device = True
    spends_shots = True

    def __init__(self, spec, local: bool = False) -> None:
        super().__init__(spec, local)
        self._runtime: RuntimePrimitives | None = None

    @classmethod
    def with_defaults(cls, spec: BackendSpec) -> BackendSpec:
        """Budgets and plans need a shot count: without shots or precision, the runtime default."""
        if spec.shots is None and not spec.precision:
            return replace(spec, shots=DEFAULT_SHOTS)
        return spec

    @classmethod
    def validate_spec(cls, spec: BackendSpec) -> None:
        if spec.method != "automatic":  # hardware does not simulate; a method here is a mistake
            raise QgenError(f"backend {spec.name!r}: kind 'ibm' runs on hardware and takes no method "
                            f"(got {spec.method!r}); remove the key")
        super().validate_spec(spec)

    @property
    def runtime(self) -> RuntimePrimitives:
        """qiskit-ibm-runtime service/backend/execution mode, opened once (on first use)."""
        if self._runtime is None:
            from qgen.backends.runtime import runtime_primitives  # deferred: see the top

            self._runtime = runtime_primitives(self.spec, local=self.local)
        return self._runtime

    @property
    def device(self) -> BackendV2:
        return self.runtime.backend

    def estimator(self, prepared: PreparedCircuit | None = None):
        from qgen.backends.journaled import JournaledEstimator  # deferred: see the top

        # the service lets a restarted run fetch its queued/running jobs by ID instead of resubmitting
        return self._journal(JournaledEstimator(self.runtime.estimator(), self.spec, self.runtime.service,
                                                local=self.local, on_mismatch=self.on_journal_mismatch))

    def sampler(self):
        """The runtime sampler, journaled."""
        from qgen.backends.journaled import JournaledSampler  # deferred: see the top

        return self._journal(JournaledSampler(self.runtime.sampler(), self.spec, self.runtime.service,
                                              local=self.local, on_mismatch=self.on_journal_mismatch))

    def planning_circuit(self, qnn_circuit):
        """The circuit the estimator will run, for planning without contacting IBM: the prepared
        one locally, else the same transpilation on the device's fake twin (same ISA)."""
        if self.local:  # uncached: the prepare() cache must hold the QNN's own parameter objects
            return self._prepare(qnn_circuit).executable
        return isa_pass_manager(self.spec, fake_backend(self.spec.device)).run(qnn_circuit.circuit)

    def service_usage_estimate(self, qnn_circuit, rows: int) -> float:
        """QPU seconds IBM Quantum estimates for one forward job of ``rows`` rows: a ``dry_run``
        job (runs on the device's mock twin, costs no shots, journals nothing)."""
        from qgen.backends.runtime import service_usage_estimate  # deferred: see the top

        prepared = self.prepare(qnn_circuit)
        grid = np.empty((len(prepared.executable_observables), 1), dtype=object)
        for index, observable in enumerate(prepared.executable_observables):
            grid[index, 0] = observable
        values = np.zeros((rows, prepared.executable.num_parameters))
        return service_usage_estimate(self.runtime.usage_estimator(), [(prepared.executable, grid, values)])

    def close(self) -> None:
        if self._runtime is not None:
            self._runtime.close()
            self._runtime = None

    def bit_sampling(self, entropy_circuit: EntropyCircuit) -> BitSampling:
        """The entropy circuit on every qubit of the device, transpiled to its ISA."""
        isa = self.pass_manager().run(entropy_circuit(self.device.num_qubits))
        return BitSampling(fixed_sampler(self.sampler()), (isa,), name=self.spec.device, needs_extraction=True,
                           seeded=False, target=self.target)

    def bit_sampling_shape(self) -> BitSamplingShape:
        width = fake_backend(self.spec.device).num_qubits  # the fake twin knows the device's size offline
        return BitSamplingShape(width, needs_extraction=True)

    def describe_device(self) -> tuple[str, str]:
        return describe_device(self.spec.device)

    def describe_credentials(self) -> str:
        from qgen.backends.runtime import find_credentials  # deferred: see the top

        try:
            credentials = f"yes ({find_credentials().source})"
        except QgenError:
            credentials = "none (use --local)"
        return credentials + retirement_note(self.spec.device)
