"""Every use of qiskit-machine-learning's private API, in one place.

qiskit-machine-learning 0.9.1 is pinned (pyproject.toml). ``tests/quantum/test_qiskit_ml_private.py``
checks each use below against the installed version and fails, naming it, when an upgrade changes
what qgen relies on. The uses:

* ``BaseEstimatorGradient._validate_arguments``: the static hook its ``run`` calls to check the
  arguments. ``PerCircuitValidation`` replaces it with one that calls the base class's own
  checks on each distinct circuit's facts, computed once (the base class recomputes them per
  triple). Were the hook renamed, the base class would validate per triple again: slower, never
  wrong.
* ``EstimatorQNN._circuit``: the re-parametrized copy of the circuit that the QNN's forward sends
  to its estimator (``forward_circuit``). Were it gone, ``VJPTorchConnector`` would ask about the
  public ``circuit`` instead and simulate once more per step: slower, never wrong.

Not listed: the protected members of ``BaseEstimatorGradient`` (``_run``, ``_preprocess``,
``_gradient_circuit_cache``, ``_estimator``, ``_pass_manager``) are its interface to subclasses,
used as qiskit-machine-learning's own gradients use them; the test covers them as well.
"""

from __future__ import annotations

from dataclasses import dataclass

from qiskit.circuit import QuantumCircuit
from qiskit.circuit.parametertable import ParameterView
from qiskit_machine_learning.gradients import BaseEstimatorGradient
from qiskit_machine_learning.neural_networks import EstimatorQNN


def forward_circuit(qnn: EstimatorQNN) -> QuantumCircuit | None:
    """The circuit object ``qnn.forward`` sends to the estimator, its parameters sorted as inputs
    then weights (the private ``_circuit``); None when this version does not have it."""
    circuit = getattr(qnn, "_circuit", None)
    return circuit if isinstance(circuit, QuantumCircuit) else None


@dataclass(frozen=True)
class _CircuitFacts:
    """What ``BaseEstimatorGradient._validate_arguments`` reads of a circuit, computed once."""

    num_parameters: int
    num_qubits: int
    parameters: frozenset

    @classmethod
    def of(cls, circuit: QuantumCircuit) -> _CircuitFacts:
        return cls(circuit.num_parameters, circuit.num_qubits, frozenset(circuit.parameters))


class PerCircuitValidation:
    """``run`` and argument validation of ``BaseEstimatorGradient`` in O(distinct circuits).

    Mixed in before ``BaseEstimatorGradient``. EstimatorQNN's backward sends the same circuit
    object batch x observables times (1024 triples at 16 qubits, batch 64). The base class builds
    ``circuit.parameters`` and a set of it for every triple (~0.1 s per backward at 16 qubits, a
    third of the exact path); here the parameter view of each distinct circuit is built once, and
    the base class's own checks run on facts computed once per circuit: the same checks, in the
    same order, with the same errors.
    """

    def run(self, circuits, observables, parameter_values, parameters=None, **options):
        if isinstance(circuits, QuantumCircuit):
            circuits = (circuits,)
        views: dict[int, ParameterView] = {}

        def view(circuit: QuantumCircuit) -> ParameterView:
            if id(circuit) not in views:
                views[id(circuit)] = circuit.parameters
            return views[id(circuit)]

        if parameters is None:
            parameters = [view(c) for c in circuits]
        else:
            parameters = [p if p is not None else view(circuits[i])
                          for i, p in enumerate(parameters)]
        return super().run(circuits, observables, parameter_values, parameters, **options)

    @staticmethod
    def _validate_arguments(circuits, observables, parameter_values, parameters) -> None:
        facts: dict[int, _CircuitFacts] = {}
        per_triple = [facts.get(id(c)) or facts.setdefault(id(c), _CircuitFacts.of(c)) for c in circuits]
        if len(parameters) == len(circuits):
            # A (circuit, parameter subset) pair seen before was checked at its first triple, which
            # would have raised there with the lower index: repeats check an empty subset.
            seen: set[tuple[int, int]] = set()
            subsets = []
            for circuit, subset in zip(circuits, parameters):
                key = (id(circuit), id(subset))
                subsets.append(() if key in seen else subset)
                seen.add(key)
            parameters = subsets
        BaseEstimatorGradient._validate_arguments(per_triple, observables, parameter_values, parameters)
