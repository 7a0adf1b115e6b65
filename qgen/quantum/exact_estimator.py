"""An exact ``BaseEstimatorV2`` that simulates every binding of a PUB in one vectorized pass.

Drop-in for :class:`qiskit.primitives.StatevectorEstimator` (same PUB coercion, broadcasting,
``data.evs`` / ``data.stds`` shapes, metadata and optional Gaussian noise when ``precision > 0``),
but each distinct circuit is compiled once and all parameter rows are simulated together, by one of
two exact methods:

* ``statevector`` - ``(rows, 2^n)`` numpy arrays (``statevector.compile_circuit``), any circuit;
* ``mps`` - an untruncated matrix-product state (``chain.compile_chain``) for circuits whose
  two-qubit gates keep the bond dimensions of the qubit chain small, e.g. the bottleneck ansatz
  with a linear entangler (bond 2^layers at any width).

``method="automatic"`` picks, per circuit, the one with less estimated work.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from qiskit.circuit import QuantumCircuit
from qiskit.primitives import BaseEstimatorV2, PrimitiveJob, PrimitiveResult, PubResult
from qiskit.primitives.containers import DataBin, EstimatorPubLike
from qiskit.primitives.containers.estimator_pub import EstimatorPub
from qiskit.providers import Options
from qiskit.quantum_info import SparsePauliOp

from qgen.quantum import chain, chain_simulate
from qgen.quantum.chain_readout import ChainObservables
from qgen.quantum.gate_ir import UnsupportedOperationError
from qgen.quantum.statevector import (
    CompiledCircuit,
    CompiledObservable,
    blas_threads,
    compile_circuit,
    compile_observable,
    cache_rows,
    expectation_values,
    simulate_chunks,
)

_COMPLEX_DTYPES = {"complex64": np.dtype(np.complex64), "complex128": np.dtype(np.complex128),
                   "<class 'numpy.complex64'>": np.dtype(np.complex64),
                   "<class 'numpy.complex128'>": np.dtype(np.complex128)}
_CACHE_LIMIT = 64  # distinct circuits / observables kept compiled per estimator instance
METHODS = ("automatic", "statevector", "mps")
# ``automatic`` compares the chain's contraction work per row, weighted by what a unit of it costs
# against a statevector amplitude-pass, with (steps x 2^n) for the state vector. Calibrated with
# the VJP connector (``benchmarks/bench_methods.py --clock cpu``, BENCHMARKS.md), after the chain
# got its local readouts and batched site matrices: the weight is ~74 / bond^1.6 (2.7 at bond 8,
# 0.88 at bond 16), clipped to a range whose floor (0.5) keeps the statevector for the bond-64
# ring ansatz, where a unit of chain work stops getting cheaper. Measured crossovers: linear 3
# layers between 11 and 12 qubits, ring 2 layers between 12 and 14. Below 9 qubits the
# statevector always wins.
_MPS_UNIT_COST = 74.0
_MPS_UNIT_COST_EXPONENT = 1.6
_MPS_UNIT_COST_RANGE = (0.5, 32.0)
_MPS_MIN_QUBITS = 9
# Aer's own MPS and statevector methods (``prefers_mps``) were calibrated on the Jacobian path:
# there a unit of chain work was worth half a statevector amplitude-pass.
_AER_MPS_WORK_DISCOUNT = 2.0
# The statevector kernels hold (rows, 2^n) states and (angles, 2^n) phase patterns; past this
# width they run out of memory (and the adjoint Jacobian out of time) on a 24 GiB CPU machine.
STATEVECTOR_MAX_QUBITS = 20


def circuit_structure_key(circuit: QuantumCircuit) -> tuple:
    """Identity of a circuit for the compile cache: gates, qubits and parameter expressions."""
    ops = tuple(
        (
            inst.operation.name,
            tuple(circuit.find_bit(q).index for q in inst.qubits),
            tuple(str(p) for p in inst.operation.params),
        )
        for inst in circuit.data
    )
    return (circuit.num_qubits, tuple(str(p) for p in circuit.parameters), ops)


@dataclass(eq=False)
class PreparedObservable:
    """A Pauli sum, compiled lazily for the method that needs it (dense arrays only if 2^n fits)."""

    op: SparsePauliOp
    _dense: CompiledObservable | None = None

    def dense(self) -> CompiledObservable:
        if self._dense is None:
            paulis = self.op.paulis
            self._dense = compile_observable(paulis.x, paulis.z, paulis.phase, self.op.coeffs,
                                             self.op.num_qubits)
        return self._dense

    def terms(self) -> list[tuple[str, complex]]:
        return list(zip(self.op.paulis.to_labels(), self.op.coeffs))


def choose_method(circuit: QuantumCircuit, requested: str = "automatic", max_bond: int = 128):
    """``(method, chain program or None, why not mps)`` without compiling a statevector program.

    Cheap (one pass over the gates): the run manifest and Aer's method choice use it as is.
    Raises when ``mps`` is forced on a circuit it cannot hold.
    """
    if requested not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {requested!r}")
    if requested == "statevector":
        return "statevector", None, ""
    try:
        program = chain.compile_chain(circuit)
    except UnsupportedOperationError as exc:
        if requested == "mps":
            raise
        return "statevector", None, f" and the MPS method cannot: {exc}"
    if requested == "mps":
        if program.max_bond > max_bond:
            raise UnsupportedOperationError(
                f"circuit {circuit.name!r} needs MPS bond dimension {_bond_text(program)} on the "
                f"qubit chain (max_bond={max_bond}); use method='statevector' or 'automatic'")
        return "mps", program, ""
    if (circuit.num_qubits >= _MPS_MIN_QUBITS and program.max_bond <= max_bond
            and mps_cost(program) < statevector_cost(program, circuit.num_qubits)):
        return "mps", program, ""
    why = (f" and the MPS method would need bond dimension {_bond_text(program)} on the qubit chain "
           f"(max_bond={max_bond}; a linear entangler keeps it at 2^layers)"
           if program.max_bond > max_bond else "")
    return "statevector", None, why


def statevector_cost(program: chain.ChainCircuit, num_qubits: int) -> float:
    """Estimated statevector cost per row in amplitude-passes: steps x 2^n."""
    return max(1, len(program.steps)) * float(1 << num_qubits)


def mps_cost(program: chain.ChainCircuit) -> float:
    """Estimated MPS cost per row in statevector amplitude-passes (see ``_MPS_UNIT_COST``)."""
    low, high = _MPS_UNIT_COST_RANGE
    weight = _MPS_UNIT_COST / float(program.max_bond) ** _MPS_UNIT_COST_EXPONENT
    return program.work_per_row * min(high, max(low, weight))


def simulation_method(circuit: QuantumCircuit, requested: str = "automatic",
                      max_bond: int = 128):
    """``(method, compiled)`` for a circuit: the chain program or the statevector program."""
    method, program, why_not_mps = choose_method(circuit, requested, max_bond)
    if method == "mps":
        return method, program
    return method, _compile_statevector(circuit, why_not_mps)


def prefers_mps(circuit: QuantumCircuit, max_bond: int = 128) -> bool:
    """Whether Aer's exact MPS beats its statevector on this circuit; never raises.

    Picks Aer's ``matrix_product_state`` method for ideal simulation: Aer's own ``automatic``
    takes the statevector, 8.6x slower for a 16-qubit batched gradient here. Calibrated on Aer
    (``_AER_MPS_WORK_DISCOUNT``), not on qgen's own kernels, which ``choose_method`` follows.
    """
    try:
        program = chain.compile_chain(circuit)
    except UnsupportedOperationError:
        return False
    return (circuit.num_qubits >= _MPS_MIN_QUBITS and program.max_bond <= max_bond
            and program.work_per_row
            < _AER_MPS_WORK_DISCOUNT * statevector_cost(program, circuit.num_qubits))


def _bond_text(program: chain.ChainCircuit) -> str:
    if program.max_bond >= chain.BOND_CEILING:
        return f"more than 2^{chain.BOND_CEILING.bit_length() - 1}"
    return str(program.max_bond)


def _compile_statevector(circuit: QuantumCircuit, why_not_mps: str) -> CompiledCircuit:
    if circuit.num_qubits > STATEVECTOR_MAX_QUBITS:
        raise UnsupportedOperationError(
            f"circuit {circuit.name!r} has {circuit.num_qubits} qubits: too wide for the "
            f"statevector method (at most {STATEVECTOR_MAX_QUBITS}){why_not_mps}")
    return compile_circuit(circuit)


@dataclass
class _PreparedPub:
    pub: EstimatorPub
    compiled: CompiledCircuit | chain.ChainCircuit
    param_shape: tuple[int, ...]
    rows: np.ndarray  # (R, P) flattened parameter rows
    observables: list[PreparedObservable]  # distinct observables of the PUB
    obs_index: np.ndarray  # per flattened observable entry, its index in ``observables``
    table: np.ndarray | None = None  # (R, len(observables)) expectation values


def _remember(cache: dict, key, value):
    if len(cache) >= _CACHE_LIMIT:
        cache.pop(next(iter(cache)))  # oldest first: bounded memory, no global state
    cache[key] = value
    return value


class VectorizedStatevectorEstimator(BaseEstimatorV2):
    """Exact expectation values; all bindings of a PUB simulated at once.

    Args:
        default_precision: precision used when neither ``run`` nor the PUB gives one. As with
            ``StatevectorEstimator``, a non-zero precision adds Gaussian noise of that width.
        seed: seed for that noise.
        dtype: ``np.complex128`` (default, matches Qiskit to ~1e-12) or ``np.complex64`` (less
            memory traffic, ~1e-6 accuracy). ``torch.complex64/128`` are accepted too.
        max_amplitudes: rows are simulated in chunks of at most this many amplitudes
            (rows x 2^n) to bound memory.
        blas_threads: BLAS threads while simulating (default 1, fastest for these small GEMMs
            on a shared CPU); ``None`` leaves the BLAS setting alone.
        method: ``automatic`` (default: per circuit, the exact method with less estimated work),
            ``statevector`` or ``mps`` (both exact; see the module docstring).
        max_bond: largest MPS bond dimension: ``automatic`` does not pick ``mps`` beyond it and
            ``mps`` refuses such circuits with an error naming the bond.
    """

    def __init__(
        self,
        *,
        default_precision: float = 0.0,
        seed: np.random.Generator | int | None = None,
        dtype=np.complex128,
        max_amplitudes: int = 1 << 23,
        blas_threads: int | None = 1,
        method: str = "automatic",
        max_bond: int = 128,
    ):
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        dtype = _COMPLEX_DTYPES.get(str(dtype).replace("torch.", ""))
        if dtype is None:
            raise ValueError(f"dtype must be complex64 or complex128, got {dtype}")
        self._default_precision = default_precision
        self._seed = seed
        self.dtype: np.dtype = dtype
        self.max_amplitudes = max_amplitudes
        self.blas_threads = blas_threads
        self.method = method
        self.max_bond = max_bond
        self._circuits: dict[tuple, CompiledCircuit | chain.ChainCircuit] = {}
        self._observables: dict[tuple, PreparedObservable] = {}
        # The last chain simulations with their tapes, for the gradient's VJP at the same rows.
        self.recent_chain_runs = chain_simulate.RecentRuns()

    @property
    def default_precision(self) -> float:
        return self._default_precision

    @property
    def options(self) -> Options:
        """Primitive options (none): lets ``BaseEstimatorGradient`` merge its own options."""
        return Options()

    # -- compilation caches (used by the exact gradient as well) -----------------------------

    def compiled_circuit(self, circuit: QuantumCircuit) -> CompiledCircuit | chain.ChainCircuit:
        """The circuit compiled for the method this estimator uses on it (cached)."""
        key = circuit_structure_key(circuit)
        cached = self._circuits.get(key)
        if cached is None:
            _, cached = simulation_method(circuit, self.method, self.max_bond)
            _remember(self._circuits, key, cached)
        return cached

    def compiled_observable(self, observable) -> PreparedObservable:
        """From a ``{label: coeff}`` mapping (an ObservablesArray entry) or a SparsePauliOp."""
        if not isinstance(observable, SparsePauliOp):
            labels, coeffs = zip(*observable.items())
            observable = SparsePauliOp(list(labels), np.asarray(coeffs, dtype=complex))
        key = (tuple(observable.paulis.to_labels()), tuple(np.round(observable.coeffs, 15)))
        cached = self._observables.get(key)
        if cached is not None:
            return cached
        return _remember(self._observables, key, PreparedObservable(observable))

    def rows_per_chunk(self, num_qubits: int, copies: int = 1) -> int:
        return max(1, self.max_amplitudes // ((1 << num_qubits) * copies))

    # -- BaseEstimatorV2 ----------------------------------------------------------------------

    def run(
        self, pubs: Iterable[EstimatorPubLike], *, precision: float | None = None
    ) -> PrimitiveJob[PrimitiveResult[PubResult]]:
        if precision is None:
            precision = self._default_precision
        coerced = [EstimatorPub.coerce(pub, precision) for pub in pubs]
        job = PrimitiveJob(self._run, coerced)
        job._submit()
        return job

    def _run(self, pubs: list[EstimatorPub]) -> PrimitiveResult[PubResult]:
        # One structure key per distinct circuit object of the call (EstimatorQNN sends the same
        # circuit in every PUB; the key walks all its gates, ~2 ms at 16 qubits).
        compiled_by_id: dict[int, CompiledCircuit | chain.ChainCircuit] = {}
        prepared = [self._prepare(pub, compiled_by_id) for pub in pubs]
        # EstimatorQNN sends one PUB per observable with the same circuit and parameter array:
        # simulate each distinct (circuit, parameters) once and read every observable from it.
        shared: dict[tuple, list[_PreparedPub]] = {}
        for item in prepared:
            key = (id(item.compiled), item.rows.shape, item.rows.tobytes())
            shared.setdefault(key, []).append(item)
        with blas_threads(self.blas_threads):
            for items in shared.values():
                columns: dict[int, int] = {}
                observables: list[PreparedObservable] = []
                for item in items:
                    for obs in item.observables:
                        if columns.setdefault(id(obs), len(observables)) == len(observables):
                            observables.append(obs)
                table = self.expectation_table(items[0].compiled, items[0].rows, observables)
                for item in items:
                    item.table = table[:, [columns[id(o)] for o in item.observables]]
        return PrimitiveResult([self._result(item) for item in prepared],
                               metadata={"version": 2})

    def _prepare(self, pub: EstimatorPub, compiled_by_id: dict) -> _PreparedPub:
        circuit = pub.circuit
        if id(circuit) not in compiled_by_id:
            compiled_by_id[id(circuit)] = self.compiled_circuit(circuit)
        bindings = pub.parameter_values
        params = bindings.as_array(circuit.parameters) if circuit.num_parameters else np.zeros(
            (*bindings.shape, 0))
        obs_entries = pub.observables.ravel()
        unique: dict[tuple, int] = {}
        obs_list: list[PreparedObservable] = []
        obs_index = np.empty(obs_entries.size, dtype=np.int64)
        for i in range(obs_entries.size):
            entry = obs_entries[i]
            key = tuple(sorted(entry.items()))
            if key not in unique:
                unique[key] = len(obs_list)
                obs_list.append(self.compiled_observable(entry))
            obs_index[i] = unique[key]
        param_shape = params.shape[:-1]
        rows = params.reshape(int(np.prod(param_shape)), params.shape[-1])
        return _PreparedPub(pub, compiled_by_id[id(circuit)], param_shape, rows, obs_list,
                            obs_index)

    def _result(self, item: _PreparedPub) -> PubResult:
        pub = item.pub
        shape = np.broadcast_shapes(item.param_shape, pub.observables.shape)
        row_of = np.broadcast_to(np.arange(item.rows.shape[0]).reshape(item.param_shape), shape)
        obs_of = np.broadcast_to(item.obs_index.reshape(pub.observables.shape), shape)
        evs = item.table[row_of, obs_of].astype(np.float64)
        if pub.precision != 0:
            rng = np.random.default_rng(self._seed)
            evs = rng.normal(evs, pub.precision)
        data = DataBin(evs=evs, stds=np.zeros_like(evs), shape=evs.shape)
        return PubResult(
            data, metadata={"target_precision": pub.precision,
                            "circuit_metadata": pub.circuit.metadata}
        )

    def expectation_table(
        self, compiled: CompiledCircuit | chain.ChainCircuit, rows: np.ndarray,
        observables: list[PreparedObservable],
    ) -> np.ndarray:
        """(R, O) expectation values of every observable on every parameter row."""
        angles = compiled.angles.values(rows)
        table = np.empty((rows.shape[0], len(observables)))
        if isinstance(compiled, chain.ChainCircuit):
            terms = ChainObservables.from_terms([o.terms() for o in observables])
            chunk = chain.rows_per_chunk(compiled)
            for start in range(0, rows.shape[0], chunk):
                table[start:start + chunk] = chain_simulate.expectation_table(
                    compiled, angles[start:start + chunk], terms, self.dtype,
                    self.recent_chain_runs)
            return table
        dense = [o.dense() for o in observables]
        # cache-sized chunks (statevector.CACHE_AMPLITUDES), within the memory bound
        chunk = cache_rows(compiled.num_qubits, self.rows_per_chunk(compiled.num_qubits))
        for start, states in simulate_chunks(compiled, angles, self.dtype, chunk):
            table[start:start + states.shape[0]] = expectation_values(dense, states)
        return table
