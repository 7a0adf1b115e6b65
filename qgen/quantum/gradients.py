"""Estimator gradients that plug into ``EstimatorQNN(gradient=...)``.

* ``BatchedParamShiftEstimatorGradient`` - the parameter-shift rule for any ``BaseEstimatorV2``
  (Aer, the exact estimator, IBM runtime on ISA circuits), but every shifted binding of a backward
  goes into ONE PUB per distinct circuit, with broadcasting: EstimatorQNN asks for the full product
  of its batch rows x its observables, which becomes ``observables (O, 1, 1)`` x
  ``parameters (R, 2S, P)``. Stock ``ParamShiftEstimatorGradient`` sends one PUB per binding.
* ``ExactEstimatorGradient`` - the exact Jacobian on the exact estimator: the adjoint method on
  the vectorized state vector (``adjoint.adjoint_jacobian``) or a written-out reverse pass
  through the untruncated MPS (``chain_adjoint.chain_jacobian``), whichever method the estimator uses.
  ``ExactEstimatorGradient.vjp`` gives the Jacobian already contracted with per-row cotangents
  (one reverse sweep per row instead of one per observable), for ``connector.VJPTorchConnector``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from typing import TYPE_CHECKING

from qiskit.circuit import Parameter, ParameterExpression, QuantumCircuit
from qiskit.circuit.parametertable import ParameterView
from qiskit.primitives import BaseEstimatorV2
from qiskit.primitives.containers import ObservablesArray
from qiskit.providers import Options
from qiskit.quantum_info.operators.base_operator import BaseOperator
from qiskit.transpiler.passmanager import BasePassManager
from qiskit_machine_learning.gradients import (
    BaseEstimatorGradient,
    DerivativeType,
    EstimatorGradientResult,
    ParamShiftEstimatorGradient,
)
from qiskit_machine_learning.utils import circuit_cache_key

from qgen.quantum.adjoint import adjoint_jacobian, adjoint_vjp
from qgen.quantum.chain import ChainCircuit
from qgen.quantum.chain import rows_per_chunk as chain_rows_per_chunk
from qgen.quantum.chain_adjoint import chain_jacobian, chain_vjp
from qgen.quantum.chain_readout import ChainObservables
from qgen.quantum.exact_estimator import VectorizedStatevectorEstimator
from qgen.quantum.qiskit_ml_private import PerCircuitValidation
from qgen.quantum.statevector import blas_threads, cache_rows

if TYPE_CHECKING:
    from qiskit_machine_learning.gradients.utils import GradientCircuit

# ---------------------------------------------------------------------------------------------
# Shared: group the flat (circuit, observable, values) triples
# ---------------------------------------------------------------------------------------------


@dataclass
class _TripleGroup:
    """Triples that share one circuit object and one parameter subset."""

    circuit: QuantumCircuit
    parameters: Sequence[Parameter]
    triples: list[int]


_ALL = "all parameters"


def _group_triples(circuits, parameters) -> list[_TripleGroup]:
    # EstimatorQNN passes the same circuit object batch*n_obs times: group by identity (cheap),
    # not by structural hash (a JSON dump per triple). Parameter objects are rebuilt on access in
    # Qiskit 2.x, so the subset is keyed by value, not by id.
    groups: dict[tuple, _TripleGroup] = {}
    for i, (circuit, params) in enumerate(zip(circuits, parameters)):
        if isinstance(params, ParameterView) and len(params) == circuit.num_parameters:
            # The base class's default "all parameters": a ParameterView of a full parameter set
            # is always in the canonical sorted order, so no need to hash its elements.
            key = (id(circuit), _ALL)
        else:
            key = (id(circuit), tuple(params))
        if key not in groups:
            groups[key] = _TripleGroup(circuit, list(params), [])
        groups[key].triples.append(i)
    return list(groups.values())


def _unique_index(keys: list) -> tuple[list, np.ndarray]:
    """Distinct keys (first-seen order) and, per position, the index of its key."""
    seen: dict = {}
    inverse = np.empty(len(keys), dtype=np.int64)
    for i, key in enumerate(keys):
        inverse[i] = seen.setdefault(key, len(seen))
    return list(seen), inverse


def _observable_key(observable: BaseOperator):
    """Hashable identity of an observable; SparsePauliOps compare by labels and coefficients."""
    if hasattr(observable, "paulis"):
        return (tuple(observable.paulis.to_labels()), observable.coeffs.tobytes())
    return id(observable)


def _is_full_product(row_inv: np.ndarray, obs_inv: np.ndarray, n_rows: int, n_obs: int) -> bool:
    if row_inv.size != n_rows * n_obs:
        return False
    return np.unique(obs_inv * n_rows + row_inv).size == row_inv.size


# ---------------------------------------------------------------------------------------------
# Batched parameter shift
# ---------------------------------------------------------------------------------------------


@dataclass
class _ShiftPlan:
    """One circuit group's shifted bindings laid out as an (obs, row, shift) grid."""

    group: _TripleGroup
    circuit: QuantumCircuit  # gradient circuit (unique parameters), transpiled if pass manager
    observables: np.ndarray  # object array (O, 1, 1) (full product) or (1, N, 1) (per triple)
    values: np.ndarray  # (1, R, 2S, G)
    row_of_triple: np.ndarray
    obs_of_triple: np.ndarray
    chain: np.ndarray  # (S, P_sub) or (R, S, P_sub): d g-params / d requested parameters
    evs: np.ndarray | None = None  # (O, R, 2S), filled from the jobs

    @property
    def grid(self) -> tuple[int, int, int]:
        return self.observables.shape[0], self.values.shape[1], self.values.shape[2]


class BatchedParamShiftEstimatorGradient(PerCircuitValidation, BaseEstimatorGradient):
    """Parameter-shift gradients with all shifted bindings in as few primitive jobs as possible.

    Args:
        estimator: any ``BaseEstimatorV2``.
        options: gradient default options (``precision`` is honoured).
        pass_manager: transpiles the gradient circuits (observables get the circuit's layout).
        precision: precision passed to ``estimator.run``; ``None`` keeps the estimator's default.
        max_bindings_per_job: split the work into several jobs when one would hold more bindings
            (circuit executions) than this; ``None`` means no limit (one job per backward).
        on_job: called with each primitive job right after it is submitted (e.g. a job journal).

    ``jobs_submitted`` counts primitive jobs submitted over the lifetime of this object.
    """

    SUPPORTED_GATES = ParamShiftEstimatorGradient.SUPPORTED_GATES

    def __init__(
        self,
        estimator: BaseEstimatorV2,
        options: Options | None = None,
        pass_manager: BasePassManager | None = None,
        *,
        precision: float | None = None,
        max_bindings_per_job: int | None = None,
        on_job: Callable[[object], None] | None = None,
    ):
        super().__init__(estimator, options, DerivativeType.REAL, pass_manager)
        if max_bindings_per_job is not None and max_bindings_per_job < 1:
            raise ValueError(f"max_bindings_per_job must be >= 1, got {max_bindings_per_job}")
        self.precision = precision
        self.max_bindings_per_job = max_bindings_per_job
        self.on_job = on_job
        self.jobs_submitted = 0
        self._linear_maps: dict[int, tuple[np.ndarray, np.ndarray] | None] = {}
        self._transpiled: dict[int, QuantumCircuit] = {}

    def _run(
        self,
        circuits: Sequence[QuantumCircuit],
        observables: Sequence[BaseOperator],
        parameter_values: Sequence[Sequence[float]] | np.ndarray,
        parameters: Sequence[Sequence[Parameter]],
        **options,
    ) -> EstimatorGradientResult:
        values = [np.asarray(v, dtype=float) for v in parameter_values]
        plans = [self._plan(group, observables, values)
                 for group in _group_triples(circuits, parameters)]
        precision = options.get("precision", self.precision)
        self._execute(plans, precision)

        gradients: list[np.ndarray] = [None] * len(circuits)  # type: ignore[list-item]
        metadata: list[dict] = [None] * len(circuits)  # type: ignore[list-item]
        for plan in plans:
            s = plan.values.shape[2] // 2
            shift_grads = (plan.evs[..., :s] - plan.evs[..., s:]) / 2  # (O, R, S)
            per_triple = shift_grads[plan.obs_of_triple, plan.row_of_triple]  # (N, S)
            if plan.chain.ndim == 2:
                original = per_triple @ plan.chain
            else:
                original = np.einsum("ns,nsp->np", per_triple, plan.chain[plan.row_of_triple])
            for t, grad in zip(plan.group.triples, original):
                gradients[t] = grad
                metadata[t] = {"parameters": plan.group.parameters}
        return EstimatorGradientResult(gradients=gradients, metadata=metadata,
                                       options=Options(**options))

    # -- planning -------------------------------------------------------------------------------

    def _plan(self, group: _TripleGroup, observables, values: list[np.ndarray]) -> _ShiftPlan:
        circuit = group.circuit
        first = group.triples[0]
        # The base class builds (and caches) the unique-parameter gradient circuit, exactly as
        # the stock ParamShift does; we only vectorize what it does per triple.
        g_circuits, _, g_params = self._preprocess(
            [circuit], [values[first]], [group.parameters], self.SUPPORTED_GATES
        )
        g_circuit = g_circuits[0]
        gradient_circuit = self._gradient_circuit_cache[circuit_cache_key(circuit)]

        rows_all = np.stack([values[t] for t in group.triples])
        row_keys, row_inv = _unique_index([r.tobytes() for r in rows_all])
        unique_rows = rows_all[[int(np.argmax(row_inv == i)) for i in range(len(row_keys))]]
        g_rows = self._gradient_values(circuit, gradient_circuit, unique_rows)

        obs_list = [observables[t] for t in group.triples]
        obs_keys, obs_inv = _unique_index([_observable_key(o) for o in obs_list])
        unique_obs = [obs_list[int(np.argmax(obs_inv == i))] for i in range(len(obs_keys))]

        shifted = [g_circuit.parameters.data.index(p) for p in g_params[0]]
        offsets = np.zeros((2 * len(shifted), g_rows.shape[1]))
        offsets[np.arange(len(shifted)), shifted] = np.pi / 2
        offsets[len(shifted) + np.arange(len(shifted)), shifted] = -np.pi / 2

        pub_circuit = self._pub_circuit(gradient_circuit, g_circuit)
        layout = pub_circuit.layout if self._pass_manager is not None else None

        def laid_out(op):
            return op.apply_layout(layout) if layout is not None else op

        if _is_full_product(row_inv, obs_inv, len(row_keys), len(obs_keys)):
            obs_grid = np.empty((len(unique_obs), 1, 1), dtype=object)
            for i, op in enumerate(unique_obs):
                obs_grid[i, 0, 0] = laid_out(op)
            base, row_of, obs_of = g_rows, row_inv, obs_inv
        else:  # arbitrary pairing: one grid row per triple
            obs_grid = np.empty((1, len(obs_list), 1), dtype=object)
            for i, op in enumerate(obs_list):
                obs_grid[0, i, 0] = laid_out(op)
            base = g_rows[row_inv]
            row_of, obs_of = np.arange(len(obs_list)), np.zeros(len(obs_list), dtype=np.int64)
        grid_values = base[None, :, None, :] + offsets[None, None, :, :]
        chain = self._chain_rule(circuit, gradient_circuit, group.parameters, g_params[0],
                                 unique_rows)
        if chain.ndim == 3 and base is not g_rows:
            chain = chain[row_inv]
        return _ShiftPlan(group, pub_circuit, obs_grid, grid_values, row_of, obs_of, chain)

    def _pub_circuit(self, gradient_circuit: GradientCircuit, g_circuit: QuantumCircuit):
        if self._pass_manager is None:
            return g_circuit
        key = id(gradient_circuit)
        if key not in self._transpiled:
            self._transpiled[key] = self._pass_manager.run(g_circuit)
        return self._transpiled[key]

    def _gradient_values(self, circuit: QuantumCircuit, gradient_circuit: GradientCircuit,
                         rows: np.ndarray) -> np.ndarray:
        """Values of the gradient circuit's parameters for every row, one matmul when linear."""
        linear = self._linear_map(circuit, gradient_circuit)
        if linear is None:
            return bound_gradient_values(circuit, gradient_circuit, rows)
        coeffs, offsets = linear
        return rows @ coeffs + offsets

    def _linear_map(self, circuit: QuantumCircuit, gradient_circuit: GradientCircuit):
        key = id(gradient_circuit)
        if key in self._linear_maps:
            return self._linear_maps[key]
        index = {p: i for i, p in enumerate(circuit.parameters)}
        g_params = list(gradient_circuit.gradient_circuit.parameters)
        coeffs = np.zeros((len(index), len(g_params)))
        offsets = np.zeros(len(g_params))
        result: tuple | None = (coeffs, offsets)
        for j, g in enumerate(g_params):
            expr = gradient_circuit.gradient_parameter_map[g]
            for p in expr.parameters:
                d = expr.gradient(p)
                if isinstance(d, ParameterExpression) and d.parameters:
                    result = None
                    break
                coeffs[index[p], j] = float(complex(d).real)
            if result is None:
                break
            offsets[j] = float(complex(expr.bind({p: 0.0 for p in expr.parameters})).real)
        self._linear_maps[key] = result
        return result

    @staticmethod
    def _chain_rule(circuit, gradient_circuit: GradientCircuit, parameters, g_parameters,
                    rows: np.ndarray) -> np.ndarray:
        """d g-param / d param as (S, P) when constant, else (R, S, P) bound per row."""
        g_position = {g: s for s, g in enumerate(g_parameters)}
        index = {p: i for i, p in enumerate(circuit.parameters)}
        constant = np.zeros((len(g_parameters), len(parameters)))
        bound_later = []
        for i, p in enumerate(parameters):
            for g, coeff in gradient_circuit.parameter_map[p]:
                if isinstance(coeff, ParameterExpression) and coeff.parameters:
                    bound_later.append((g_position[g], i, coeff))
                else:
                    constant[g_position[g], i] += float(complex(coeff).real)
        if not bound_later:
            return constant
        chain = np.broadcast_to(constant, (rows.shape[0], *constant.shape)).copy()
        for s, i, coeff in bound_later:
            for r, row in enumerate(rows):
                bound = coeff.bind({p: row[index[p]] for p in coeff.parameters})
                chain[r, s, i] += float(complex(bound).real)
        return chain

    # -- execution ------------------------------------------------------------------------------

    def _execute(self, plans: list[_ShiftPlan], precision: float | None) -> None:
        pieces = [piece for plan in plans for piece in self._split(plan)]
        for plan in plans:
            plan.evs = np.empty(plan.grid)
        jobs: list[list] = []
        budget = self.max_bindings_per_job
        load = 0
        for piece in pieces:
            size = piece[-1]
            if not jobs or (budget is not None and load + size > budget):
                jobs.append([])
                load = 0
            jobs[-1].append(piece)
            load += size
        for batch in jobs:
            pubs = [(plan.circuit, ObservablesArray(obs, validate=True), vals)
                    for plan, _, obs, vals, _ in batch]
            if precision is None:
                job = self._estimator.run(pubs)
            else:
                job = self._estimator.run(pubs, precision=precision)
            self.jobs_submitted += 1
            if self.on_job is not None:
                self.on_job(job)
            for (plan, where, *_), result in zip(batch, job.result()):
                plan.evs[where] = np.asarray(result.data.evs).reshape(plan.evs[where].shape)

    def _split(self, plan: _ShiftPlan):
        """Cut the plan's (obs, row, shift) grid into PUB pieces of at most the job budget."""
        n_obs, n_rows, n_shift = plan.grid
        budget = self.max_bindings_per_job or n_obs * n_rows * n_shift
        if n_obs * n_shift <= budget:
            steps = (n_obs, budget // (n_obs * n_shift), n_shift)
        elif n_shift <= budget:
            steps = (budget // n_shift, 1, n_shift)
        else:
            steps = (1, 1, budget)
        per_triple = plan.observables.shape[1] > 1
        for o in range(0, n_obs, steps[0]):
            for r in range(0, n_rows, steps[1]):
                for s in range(0, n_shift, steps[2]):
                    so, sr, ss = (slice(o, o + steps[0]), slice(r, r + steps[1]),
                                  slice(s, s + steps[2]))
                    obs = plan.observables[so, sr if per_triple else slice(None)]
                    vals = plan.values[:, sr, ss]
                    size = int(np.prod(np.broadcast_shapes(obs.shape, vals.shape[:-1])))
                    yield plan, (so, sr, ss), obs, vals, size


def bound_gradient_values(circuit: QuantumCircuit, gradient_circuit: GradientCircuit,
                          rows: np.ndarray) -> np.ndarray:
    """(R, G) values of the gradient circuit's parameters, each expression bound per row.

    What ``_preprocess`` computes per triple with qiskit-machine-learning's module-private helper
    ``_make_gradient_parameter_values``, here from ``GradientCircuit``'s public fields (the test
    compares the two). Only for expressions that are not linear: linear ones are one matmul.
    """
    index = {p: i for i, p in enumerate(circuit.parameters)}
    expressions = [gradient_circuit.gradient_parameter_map[g] for g in gradient_circuit.gradient_circuit.parameters]
    return np.array([[float(e.bind({p: row[index[p]] for p in e.parameters})) for e in expressions]
                     for row in rows]).reshape(len(rows), len(expressions))


# ---------------------------------------------------------------------------------------------
# Exact adjoint gradient
# ---------------------------------------------------------------------------------------------


class ExactEstimatorGradient(PerCircuitValidation, BaseEstimatorGradient):
    """Exact Jacobian of every (circuit, observable, values) triple, in reverse mode.

    On the estimator's statevector method this is the adjoint method; on its MPS method a
    written-out reverse pass through the chain (``chain_adjoint.chain_jacobian``).

    Triples that share a circuit are done in one vectorized pass: distinct parameter rows are
    simulated once, and when the triples form a full rows x observables product (what
    EstimatorQNN sends) each row's observables are its batch of cotangents.

    Args:
        estimator: the ``VectorizedStatevectorEstimator`` whose compile cache and dtype are used
            (a new complex128 one if omitted).
        options: gradient default options (kept for interface compatibility).
        max_amplitudes: bound on rows x cotangents x 2^n held at once (memory).
    """

    def __init__(
        self,
        estimator: VectorizedStatevectorEstimator | None = None,
        options: Options | None = None,
        *,
        max_amplitudes: int = 1 << 22,
    ):
        estimator = estimator if estimator is not None else VectorizedStatevectorEstimator()
        if not isinstance(estimator, VectorizedStatevectorEstimator):
            raise TypeError("ExactEstimatorGradient needs a VectorizedStatevectorEstimator")
        super().__init__(estimator, options, DerivativeType.REAL)
        self.max_amplitudes = max_amplitudes

    def _run(
        self,
        circuits: Sequence[QuantumCircuit],
        observables: Sequence[BaseOperator],
        parameter_values: Sequence[Sequence[float]] | np.ndarray,
        parameters: Sequence[Sequence[Parameter]],
        **options,
    ) -> EstimatorGradientResult:
        estimator: VectorizedStatevectorEstimator = self._estimator  # type: ignore[assignment]
        gradients: list[np.ndarray] = [None] * len(circuits)  # type: ignore[list-item]
        metadata: list[dict] = [None] * len(circuits)  # type: ignore[list-item]
        values = [np.asarray(v, dtype=float) for v in parameter_values]
        for group in _group_triples(circuits, parameters):
            with blas_threads(estimator.blas_threads):
                jac = self._group_jacobian(estimator, group, observables, values)
            index = {p: i for i, p in enumerate(group.circuit.parameters)}
            columns = [index[p] for p in group.parameters]
            for t, grad in zip(group.triples, jac[:, columns]):
                gradients[t] = grad
                metadata[t] = {"parameters": group.parameters}
        return EstimatorGradientResult(gradients=gradients, metadata=metadata,
                                       options=Options(**options))

    def _group_jacobian(self, estimator: VectorizedStatevectorEstimator, group: _TripleGroup,
                        observables, values: list[np.ndarray]) -> np.ndarray:
        """(N, P) gradients of the group's triples w.r.t. all circuit parameters."""
        compiled = estimator.compiled_circuit(group.circuit)
        rows_all = np.stack([values[t] for t in group.triples])
        row_keys, row_inv = _unique_index([r.tobytes() for r in rows_all])
        by_object: dict[int, object] = {}  # EstimatorQNN repeats the same operator objects
        compiled_obs = [
            by_object.get(id(observables[t])) or by_object.setdefault(
                id(observables[t]), estimator.compiled_observable(observables[t]))
            for t in group.triples
        ]
        obs_keys, obs_inv = _unique_index([id(o) for o in compiled_obs])
        obs_list = [compiled_obs[int(np.argmax(obs_inv == i))] for i in range(len(obs_keys))]

        if _is_full_product(row_inv, obs_inv, len(row_keys), len(obs_keys)):
            first = [int(np.argmax(row_inv == i)) for i in range(len(row_keys))]
            rows = rows_all[first]
            obs_index = np.tile(np.arange(len(obs_list)), (len(rows), 1))
            pick = (row_inv, obs_inv)
        else:  # one cotangent per triple
            rows = rows_all
            obs_index = obs_inv[:, None]
            pick = (np.arange(len(rows)), np.zeros(len(rows), dtype=np.int64))

        angles = compiled.angles.values(rows)
        if isinstance(compiled, ChainCircuit):
            jacobian, readouts = chain_jacobian, ChainObservables.from_terms(
                [o.terms() for o in obs_list])
            per_chunk = chain_rows_per_chunk(compiled)
        else:
            jacobian, readouts = adjoint_jacobian, [o.dense() for o in obs_list]
            per_chunk = max(1, self.max_amplitudes // (compiled.dim * (obs_index.shape[1] + 1)))
        angle_grads = np.concatenate([
            jacobian(compiled, angles[s:s + per_chunk], readouts,
                     obs_index[s:s + per_chunk], estimator.dtype)
            for s in range(0, len(rows), per_chunk)
        ])  # (R, K, G)
        jac = compiled.angles.jacobian(rows)
        if jac.ndim == 2:
            param_grads = angle_grads @ jac.T  # (R, K, P)
        else:
            param_grads = np.einsum("rkg,rpg->rkp", angle_grads, jac)
        return param_grads[pick]

    def vjp(self, circuit: QuantumCircuit, observables: Sequence[BaseOperator],
            parameter_values: np.ndarray, cotangents: np.ndarray) -> np.ndarray:
        """``sum_k cotangents[r, k] d<observables[k]>(values[r]) / d params``: shape (R, P).

        ``parameter_values`` (R, P) and the result follow ``circuit.parameters``; ``cotangents``
        is (R, K) for the K observables (Pauli sums). Equal to contracting the Jacobian that
        ``run`` returns with the cotangents, but each row costs one reverse sweep with the
        weighted observable ``sum_k g_rk O_k`` instead of K sweeps.
        """
        estimator: VectorizedStatevectorEstimator = self._estimator  # type: ignore[assignment]
        rows = np.asarray(parameter_values, dtype=float).reshape(-1, circuit.num_parameters)
        weights = np.asarray(cotangents, dtype=float).reshape(rows.shape[0], len(observables))
        for i, observable in enumerate(observables):
            if observable.num_qubits != circuit.num_qubits:
                raise ValueError(
                    f"The number of qubits of the circuit ({circuit.num_qubits}) does not match "
                    f"the number of qubits of the {i}-th observable ({observable.num_qubits}).")
        compiled = estimator.compiled_circuit(circuit)
        prepared = [estimator.compiled_observable(o) for o in observables]
        with blas_threads(estimator.blas_threads):
            angles = compiled.angles.values(rows)
            if isinstance(compiled, ChainCircuit):
                readouts = ChainObservables.from_terms([o.terms() for o in prepared])
                per_chunk = chain_rows_per_chunk(compiled)
                angle_grads = np.concatenate([
                    chain_vjp(compiled, angles[s:s + per_chunk], readouts,
                              weights[s:s + per_chunk], estimator.dtype,
                              estimator.recent_chain_runs)
                    for s in range(0, len(rows), per_chunk)
                ]) if len(rows) else np.zeros((0, compiled.angles.num_angles))  # (R, G)
            else:
                # adjoint_vjp chunks the rows itself (cache-sized), within the memory bound
                memory_rows = max(1, self.max_amplitudes // (compiled.dim * 2))
                angle_grads = adjoint_vjp(compiled, angles, [o.dense() for o in prepared],
                                          weights, estimator.dtype,
                                          cache_rows(compiled.num_qubits, memory_rows))
            jac = compiled.angles.jacobian(rows)
            if jac.ndim == 2:
                return angle_grads @ jac.T
            return np.einsum("rg,rpg->rp", angle_grads, jac)


__all__ = ["BatchedParamShiftEstimatorGradient", "ExactEstimatorGradient"]
