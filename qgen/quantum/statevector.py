"""Vectorized state-vector kernels: compile a circuit once, simulate every binding of a PUB at once.

A circuit is compiled into a short list of fused operations:

* ``ProductPrefix``  - single-qubit gates that act before a qubit meets any multi-qubit gate. The
  state after them is a product state, built as one Kronecker product instead of gate by gate.
* ``DiagonalOp``     - a run of diagonal gates (rz, p, z, s, t, cz, rzz, cp, ...) fused into one phase
  vector: ``phase = exp(i * (angles @ patterns + constant))`` (one GEMM, one multiply).
* ``PermutationOp``  - a run of basis permutations (x, cx, swap, ccx) fused into one gather index.
* ``LayerOp``        - single-qubit gates on distinct qubits, applied one qubit at a time on a
  ``(rows, 2^(n-q-1), 2, 2^q)`` view.

Kernels are numpy (complex128 by default, complex64 optional): on a small shared CPU numpy's
single-threaded complex loops beat torch's by 10-50x (torch complex ops are poorly vectorized and
its thread pool spins when cores are contended).

Every gate parameter becomes one "angle" column; ``AngleProgram`` maps circuit parameter values
``(rows, P)`` to angles ``(rows, G)`` with one matrix product when the expressions are linear
(``θ``, ``θ + π/2``, ``2θ`` - what ISA circuits contain) and binds them row by row otherwise.

Conventions follow Qiskit: qubit ``q`` is bit ``q`` of the basis index (little endian).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
from qiskit.circuit import ControlFlowOp, ParameterExpression, QuantumCircuit

from qgen.errors import QgenError


class UnsupportedOperationError(QgenError, ValueError):
    """The circuit holds an operation the vectorized simulator cannot apply."""


@contextlib.contextmanager
def blas_threads(limit: int | None) -> Iterator[None]:
    """Limit BLAS threads for the duration of a call (``None``: leave BLAS alone).

    The kernels are many small stacked GEMVs/GEMMs; on a small or shared CPU, multi-threaded
    OpenBLAS spends more time synchronising than computing (5-10x slower measured on 2 busy cores).
    """
    if limit is None:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: without it BLAS keeps its own thread count
        yield
        return
    with threadpool_limits(limits=limit, user_api="blas"):
        yield


# ---------------------------------------------------------------------------------------------
# Angles
# ---------------------------------------------------------------------------------------------


@dataclass
class AngleProgram:
    """``angles = values @ coeffs + offsets``, plus row-by-row binding for nonlinear expressions."""

    num_parameters: int
    coeffs: np.ndarray  # (P, G)
    offsets: np.ndarray  # (G,)
    nonlinear: dict[int, ParameterExpression]  # angle index -> expression (bound per row)
    parameter_index: dict  # Parameter -> column in the circuit's parameter order

    @property
    def num_angles(self) -> int:
        return self.offsets.shape[0]

    def values(self, params: np.ndarray) -> np.ndarray:
        angles = params @ self.coeffs + self.offsets
        for g, expr in self.nonlinear.items():
            angles[:, g] = [complex(expr.bind(self._binding(row, expr))).real for row in params]
        return angles

    def jacobian(self, params: np.ndarray) -> np.ndarray:
        """d angles / d params: ``(P, G)`` when linear, ``(rows, P, G)`` otherwise."""
        if not self.nonlinear:
            return self.coeffs
        jac = np.broadcast_to(self.coeffs, (params.shape[0], *self.coeffs.shape)).copy()
        for g, expr in self.nonlinear.items():
            for p in expr.parameters:
                d_expr = expr.gradient(p)
                col = self.parameter_index[p]
                for r, row in enumerate(params):
                    value = d_expr
                    if isinstance(d_expr, ParameterExpression):
                        value = d_expr.bind(self._binding(row, d_expr))
                    jac[r, col, g] = float(complex(value).real)
        return jac

    def _binding(self, row: np.ndarray, expr: ParameterExpression) -> dict:
        return {p: row[self.parameter_index[p]] for p in expr.parameters}


class _AngleBuilder:
    def __init__(self, circuit: QuantumCircuit):
        self.parameter_index = {p: i for i, p in enumerate(circuit.parameters)}
        self.columns: list[np.ndarray] = []
        self.offsets: list[float] = []
        self.nonlinear: dict[int, ParameterExpression] = {}

    def add(self, value) -> int:
        column = np.zeros(len(self.parameter_index))
        offset = 0.0
        g = len(self.offsets)
        if isinstance(value, ParameterExpression) and value.parameters:
            linear = True
            for p in value.parameters:
                d = value.gradient(p)
                if isinstance(d, ParameterExpression) and d.parameters:
                    linear = False
                    break
                column[self.parameter_index[p]] = float(complex(d).real)
            if linear:
                offset = float(complex(value.bind({p: 0.0 for p in value.parameters})).real)
            else:
                column[:] = 0.0
                self.nonlinear[g] = value
        else:
            offset = float(complex(value).real)
        self.columns.append(column)
        self.offsets.append(offset)
        return g

    def build(self) -> AngleProgram:
        p = len(self.parameter_index)
        coeffs = np.stack(self.columns, axis=1) if self.columns else np.zeros((p, 0))
        return AngleProgram(p, coeffs, np.asarray(self.offsets, dtype=float), self.nonlinear,
                            self.parameter_index)


# ---------------------------------------------------------------------------------------------
# Single-qubit matrices (numpy, batched over rows: angles have shape (R,), matrices (R, 2, 2))
# ---------------------------------------------------------------------------------------------

_SQ2 = 1 / math.sqrt(2)
FIXED_1Q = {
    "h": np.array([[_SQ2, _SQ2], [_SQ2, -_SQ2]], dtype=complex),
    "x": np.array([[0, 1], [1, 0]], dtype=complex),
    "y": np.array([[0, -1j], [1j, 0]], dtype=complex),
    "z": np.diag([1, -1]).astype(complex),
    "s": np.diag([1, 1j]),
    "sdg": np.diag([1, -1j]),
    "t": np.diag([1, np.exp(1j * np.pi / 4)]),
    "tdg": np.diag([1, np.exp(-1j * np.pi / 4)]),
    "sx": 0.5 * np.array([[1 + 1j, 1 - 1j], [1 - 1j, 1 + 1j]]),
    "sxdg": 0.5 * np.array([[1 - 1j, 1 + 1j], [1 + 1j, 1 - 1j]]),
}


def _mat(a, b, c, d) -> np.ndarray:
    a, b, c, d = np.broadcast_arrays(*(np.asarray(v, dtype=complex) for v in (a, b, c, d)))
    return np.stack([np.stack([a, b], -1), np.stack([c, d], -1)], -2)


def _u(theta, phi, lam) -> np.ndarray:
    c, s = np.cos(theta / 2), np.sin(theta / 2)
    return _mat(c, -np.exp(1j * lam) * s, np.exp(1j * phi) * s, np.exp(1j * (phi + lam)) * c)


def _u_derivatives(theta, phi, lam) -> list[np.ndarray]:
    c, s = np.cos(theta / 2), np.sin(theta / 2)
    el, ep, epl = np.exp(1j * lam), np.exp(1j * phi), np.exp(1j * (phi + lam))
    zero = np.zeros_like(c)
    return [
        _mat(-s / 2, -el * c / 2, ep * c / 2, -epl * s / 2),
        _mat(zero, zero, 1j * ep * s, 1j * epl * c),
        _mat(zero, -1j * el * s, zero, 1j * epl * c),
    ]


def one_qubit_matrix(name: str, angles: list[np.ndarray]) -> np.ndarray:
    """The gate's 2x2 matrix for each row of angles: shape ``(R, 2, 2)`` (R=1 for fixed gates)."""
    if name in FIXED_1Q:
        return FIXED_1Q[name][None]
    if name == "rx":
        c, s = np.cos(angles[0] / 2), np.sin(angles[0] / 2)
        return _mat(c, -1j * s, -1j * s, c)
    if name == "ry":
        c, s = np.cos(angles[0] / 2), np.sin(angles[0] / 2)
        return _mat(c, -s, s, c)
    if name == "rz":
        e = np.exp(-0.5j * angles[0])
        return _mat(e, 0, 0, e.conj())
    if name in ("p", "u1"):
        return _mat(1, 0, 0, np.exp(1j * angles[0]))
    if name in ("u", "u3"):
        return _u(*angles)
    if name == "u2":
        return _u(np.full_like(angles[0], np.pi / 2), *angles)
    raise UnsupportedOperationError(f"no single-qubit matrix for gate {name!r}")


def one_qubit_derivatives(name: str, angles: list[np.ndarray]) -> list[np.ndarray]:
    """d matrix / d angle_k for each angle of the gate, each ``(R, 2, 2)``."""
    if name == "rx":
        c, s = np.cos(angles[0] / 2), np.sin(angles[0] / 2)
        return [_mat(-s / 2, -0.5j * c, -0.5j * c, -s / 2)]
    if name == "ry":
        c, s = np.cos(angles[0] / 2), np.sin(angles[0] / 2)
        return [_mat(-s / 2, -c / 2, c / 2, -s / 2)]
    if name == "rz":
        e = np.exp(-0.5j * angles[0])
        return [_mat(-0.5j * e, 0, 0, 0.5j * e.conj())]
    if name in ("p", "u1"):
        return [_mat(0, 0, 0, 1j * np.exp(1j * angles[0]))]
    if name in ("u", "u3"):
        return _u_derivatives(*angles)
    if name == "u2":
        return _u_derivatives(np.full_like(angles[0], np.pi / 2), *angles)[1:]
    return []


# Diagonal gates: phase(s) = sum_k angle_k * pattern_k(bits) + constant(bits).
# Each entry: (number of angles, function(bits of the gate's qubits) -> per-angle pattern list,
# constant pattern or None). Bits are float arrays over the 2^n basis states.
DIAGONAL_GATES: dict[str, tuple[Callable, Callable | None]] = {
    "rz": (lambda b: [b[0] - 0.5], None),
    "p": (lambda b: [b[0]], None),
    "u1": (lambda b: [b[0]], None),
    "rzz": (lambda b: [(b[0] + b[1]) % 2 - 0.5], None),
    "cp": (lambda b: [b[0] * b[1]], None),
    "cu1": (lambda b: [b[0] * b[1]], None),
    "crz": (lambda b: [b[0] * (b[1] - 0.5)], None),
    "z": (lambda b: [], lambda b: np.pi * b[0]),
    "s": (lambda b: [], lambda b: np.pi / 2 * b[0]),
    "sdg": (lambda b: [], lambda b: -np.pi / 2 * b[0]),
    "t": (lambda b: [], lambda b: np.pi / 4 * b[0]),
    "tdg": (lambda b: [], lambda b: -np.pi / 4 * b[0]),
    "cz": (lambda b: [], lambda b: np.pi * b[0] * b[1]),
    "ccz": (lambda b: [], lambda b: np.pi * b[0] * b[1] * b[2]),
}
PERMUTATION_GATES = {"x", "cx", "swap", "ccx"}
LAYER_GATES = {"rx", "ry", "h", "y", "sx", "sxdg", "u", "u3", "u2"}
# Diagonal single-qubit gates may also live in the product prefix as 2x2 matrices.
PREFIX_GATES = LAYER_GATES | {"rz", "p", "u1", "z", "s", "sdg", "t", "tdg", "x"}
IGNORED = {"barrier", "delay", "id"}
SUPPORTED = set(DIAGONAL_GATES) | PERMUTATION_GATES | LAYER_GATES | IGNORED


def _permutation_source(name: str, qubits: list[int], index: np.ndarray) -> np.ndarray:
    """``new[t] = old[source[t]]``; all supported permutations are involutions."""
    if name == "x":
        return index ^ (1 << qubits[0])
    if name == "cx":
        c, t = qubits
        return np.where((index >> c) & 1, index ^ (1 << t), index)
    if name == "ccx":
        c1, c2, t = qubits
        return np.where(((index >> c1) & 1) & ((index >> c2) & 1), index ^ (1 << t), index)
    if name == "swap":
        a, b = qubits
        differ = ((index >> a) & 1) != ((index >> b) & 1)
        return np.where(differ, index ^ ((1 << a) | (1 << b)), index)
    raise UnsupportedOperationError(f"gate {name!r} is not a permutation")


# ---------------------------------------------------------------------------------------------
# Compiled circuit
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GateRef:
    name: str
    qubit: int
    angle_index: tuple[int, ...]


@dataclass
class ProductPrefix:
    chains: list[list[GateRef]]  # per qubit, in application order


@dataclass
class DiagonalOp:
    angle_index: np.ndarray  # (K,)
    patterns: np.ndarray  # (K, 2^n) float
    constant: np.ndarray  # (2^n,) float
    _cast: dict = field(default_factory=dict, repr=False)

    def arrays(self, real_dtype) -> tuple[np.ndarray, np.ndarray]:
        key = np.dtype(real_dtype)
        if key not in self._cast:
            self._cast[key] = (self.patterns.astype(key), self.constant.astype(key))
        return self._cast[key]


@dataclass
class PermutationOp:
    source: np.ndarray  # new[t] = old[source[t]]
    inverse: np.ndarray


@dataclass
class LayerOp:
    gates: list[GateRef]  # distinct qubits, so every gate commutes with the others


@dataclass
class CompiledCircuit:
    num_qubits: int
    angles: AngleProgram
    prefix: ProductPrefix
    ops: list  # DiagonalOp | PermutationOp | LayerOp

    @property
    def dim(self) -> int:
        return 1 << self.num_qubits


def gate_instructions(circuit: QuantumCircuit, builder: _AngleBuilder, supported: set[str],
                      simulator: str) -> Iterator[tuple]:
    """``(operation, qubit indices, angle indices)`` of every gate; barriers etc. skipped.

    Raises ``UnsupportedOperationError`` naming the operation for anything not in ``supported``.
    """
    for inst in circuit.data:
        op = inst.operation
        if op.name in IGNORED:
            continue
        if isinstance(op, ControlFlowOp) or inst.clbits or getattr(op, "condition", None):
            raise UnsupportedOperationError(
                f"operation {op.name!r} needs classical bits or control flow; {simulator} "
                "only simulates unitary gates")
        if op.name not in supported:
            raise UnsupportedOperationError(
                f"gate {op.name!r} is not supported by {simulator}; transpile to {sorted(supported)}")
        qubits = [circuit.find_bit(q).index for q in inst.qubits]
        yield op, qubits, tuple(builder.add(p) for p in op.params)


def compile_circuit(circuit: QuantumCircuit) -> CompiledCircuit:
    """Translate ``circuit`` into fused operations; raises ``UnsupportedOperationError``."""
    n = circuit.num_qubits
    builder = _AngleBuilder(circuit)
    chains: list[list[GateRef]] = [[] for _ in range(n)]
    entangled: set[int] = set()
    program: list[tuple[str, list[int], tuple[int, ...]]] = []
    for op, qubits, angle_index in gate_instructions(
            circuit, builder, SUPPORTED - IGNORED, "the vectorized statevector estimator"):
        name = op.name
        if len(qubits) == 1 and qubits[0] not in entangled and name in PREFIX_GATES:
            chains[qubits[0]].append(GateRef(name, qubits[0], angle_index))
            continue
        entangled.update(qubits)
        program.append((name, qubits, angle_index))
    return CompiledCircuit(n, builder.build(), ProductPrefix(chains), _fuse(program, n))


def _gate_kind(name: str) -> str:
    if name in DIAGONAL_GATES:
        return "diagonal"
    if name in PERMUTATION_GATES:
        return "permutation"
    return "layer"


def _fuse(program, n: int) -> list:
    """Group consecutive gates of the same kind into one fused operation."""
    index = np.arange(1 << n, dtype=np.int64)
    bits = [((index >> q) & 1).astype(float) for q in range(n)]
    groups: list[tuple[str, list]] = []
    for name, qubits, angle_index in program:
        kind = _gate_kind(name)
        if groups and groups[-1][0] == kind:
            if kind != "layer" or all(g[1][0] != qubits[0] for g in groups[-1][1]):
                groups[-1][1].append((name, qubits, angle_index))
                continue
        groups.append((kind, [(name, qubits, angle_index)]))
    ops: list = []
    for kind, gates in groups:
        if kind == "diagonal":
            patterns, angle_ids = [], []
            constant = np.zeros(1 << n)
            for name, qubits, angle_index in gates:
                angle_patterns, constant_pattern = DIAGONAL_GATES[name]
                gate_bits = [bits[q] for q in qubits]
                for g, pattern in zip(angle_index, angle_patterns(gate_bits)):
                    angle_ids.append(g)
                    patterns.append(pattern)
                if constant_pattern is not None:
                    constant += constant_pattern(gate_bits)
            pat = np.stack(patterns) if patterns else np.zeros((0, 1 << n))
            ops.append(DiagonalOp(np.asarray(angle_ids, dtype=np.int64), pat, constant))
        elif kind == "permutation":
            source = index
            for name, qubits, _ in gates:
                source = source[_permutation_source(name, qubits, index)]
            inverse = np.empty_like(source)
            inverse[source] = index
            ops.append(PermutationOp(source, inverse))
        else:
            ops.append(LayerOp([GateRef(name, qubits[0], ai) for name, qubits, ai in gates]))
    return ops


# ---------------------------------------------------------------------------------------------
# Kernels on numpy states of shape (R, ..., 2^n)
# ---------------------------------------------------------------------------------------------


def real_dtype(dtype) -> np.dtype:
    return np.dtype(np.float32) if np.dtype(dtype) == np.complex64 else np.dtype(np.float64)


def gate_matrices(gate: GateRef, angles: np.ndarray) -> np.ndarray:
    """(R or 1, 2, 2) matrices; angles that are equal on every row collapse to one matrix."""
    return one_qubit_matrix(gate.name, [_column(angles, g) for g in gate.angle_index])


def gate_derivatives(gate: GateRef, angles: np.ndarray) -> list[np.ndarray]:
    return one_qubit_derivatives(gate.name, [_column(angles, g) for g in gate.angle_index])


def _column(angles: np.ndarray, g: int) -> np.ndarray:
    col = angles[:, g]
    return col[:1] if np.all(col == col[0]) else col


def apply_one_qubit(state: np.ndarray, matrix: np.ndarray, qubit: int) -> np.ndarray:
    """Apply ``matrix`` ((R or 1, 2, 2)) on ``qubit`` of ``state`` ((R, ..., 2^n)), out of place."""
    rows, low = state.shape[0], 1 << qubit
    if not np.any(matrix.imag):
        # Real gate (ry, h, x, cx-free layers): act on the interleaved re/im floats directly,
        # half the arithmetic of complex x complex.
        real = np.ascontiguousarray(state).view(real_dtype(state.dtype))
        out = _apply_two_by_two(real.reshape(rows, -1, 2, 2 * low), matrix.real.astype(real.dtype))
        return out.reshape(real.shape).view(state.dtype).reshape(state.shape)
    view = state.reshape(rows, -1, 2, low)
    return _apply_two_by_two(view, matrix.astype(state.dtype, copy=False)).reshape(state.shape)


def _apply_two_by_two(view: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """out[:, :, i, :] = sum_j matrix[:, i, j] * view[:, :, j, :] for view (R, hi, 2, low)."""
    low = view.shape[-1]
    if low >= 32:  # long contiguous runs: numpy's stacked matmul is fastest
        return np.matmul(matrix[:, None], view)
    m = matrix.reshape(matrix.shape[0], 1, 2, 2, 1)
    a, b = view[:, :, 0, :], view[:, :, 1, :]
    out = np.empty_like(view)
    np.multiply(m[:, :, 0, 0], a, out=out[:, :, 0, :])
    out[:, :, 0, :] += m[:, :, 0, 1] * b
    np.multiply(m[:, :, 1, 0], a, out=out[:, :, 1, :])
    out[:, :, 1, :] += m[:, :, 1, 1] * b
    return out


def diagonal_phase(op: DiagonalOp, angles: np.ndarray, dtype) -> np.ndarray:
    """exp(i * phase) with shape (R or 1, 2^n)."""
    patterns, constant = op.arrays(real_dtype(dtype))
    cols = angles[:, op.angle_index]
    if cols.shape[0] > 1 and np.all(cols == cols[:1]):
        cols = cols[:1]  # weights shared by every row: one phase vector for all
    phase = cols.astype(patterns.dtype) @ patterns + constant
    out = np.empty(phase.shape, dtype=dtype)
    np.cos(phase, out=out.real)
    np.sin(phase, out=out.imag)
    return out


def prefix_vectors(prefix: ProductPrefix, angles: np.ndarray) -> np.ndarray:
    """Per-qubit single-qubit states after the prefix: (R, n, 2) complex."""
    rows = angles.shape[0]
    vectors = np.zeros((rows, len(prefix.chains), 2), dtype=complex)
    vectors[:, :, 0] = 1.0
    for q, chain in enumerate(prefix.chains):
        for gate in chain:
            vectors[:, q] = np.einsum("rij,rj->ri", _rows(gate_matrices(gate, angles), rows),
                                      vectors[:, q])
    return vectors


def _rows(matrix: np.ndarray, rows: int) -> np.ndarray:
    return np.broadcast_to(matrix, (rows, *matrix.shape[1:]))


def kron_states(vectors: np.ndarray) -> np.ndarray:
    """(R, m, 2) per-qubit vectors (qubit j = bit j) -> (R, 2^m) product state."""
    rows, m = vectors.shape[0], vectors.shape[1]
    state = vectors[:, m - 1] if m else np.ones((rows, 1), dtype=vectors.dtype)
    for q in range(m - 2, -1, -1):
        state = (state[:, :, None] * vectors[:, q, None, :]).reshape(rows, -1)
    return state


def apply_op(state: np.ndarray, op, angles: np.ndarray, *, inverse: bool = False) -> np.ndarray:
    """Apply (or un-apply) one fused operation to states of shape (R, ..., 2^n)."""
    if isinstance(op, DiagonalOp):
        phase = diagonal_phase(op, angles, state.dtype)
        if inverse:
            np.conjugate(phase, out=phase)
        phase = phase.reshape(phase.shape[0], *([1] * (state.ndim - 2)), -1)
        return np.multiply(state, phase, out=state if inverse else None)
    if isinstance(op, PermutationOp):
        return np.take(state, op.inverse if inverse else op.source, axis=-1)
    gates = reversed(op.gates) if inverse else op.gates
    for gate in gates:
        m = gate_matrices(gate, angles)
        if inverse:
            m = m.conj().transpose(0, 2, 1)
        state = apply_one_qubit(state, m, gate.qubit)
    return state


def simulate(compiled: CompiledCircuit, angles: np.ndarray, dtype=np.complex128) -> np.ndarray:
    """Final states (R, 2^n) for angle rows (R, G)."""
    state = kron_states(prefix_vectors(compiled.prefix, angles).astype(dtype))
    for op in compiled.ops:
        state = apply_op(state, op, angles)
    return state


# ---------------------------------------------------------------------------------------------
# Observables
# ---------------------------------------------------------------------------------------------


@dataclass
class CompiledObservable:
    """A Pauli sum grouped by X-mask: ``O|s> = sum_x c_x(s) |s ^ x>``.

    ``<psi|O|psi> = sum_x sum_s conj(psi[s ^ x]) c_x(s) psi[s]``. Z-only observables are a single
    real diagonal ``diagonal`` (the fast path: probabilities @ diagonals).
    """

    dim: int
    groups: list[tuple[int, np.ndarray]]  # (x mask, c_x over basis states, complex)

    @property
    def is_diagonal(self) -> bool:
        return all(x == 0 for x, _ in self.groups)

    @property
    def diagonal(self) -> np.ndarray:
        """Real part of the X-free group (the whole observable when ``is_diagonal``)."""
        for x, c in self.groups:
            if x == 0:
                return np.real(c)
        return np.zeros(self.dim)


def compile_observable(paulis_x: np.ndarray, paulis_z: np.ndarray, phases: np.ndarray,
                       coeffs: np.ndarray, num_qubits: int) -> CompiledObservable:
    """From a SparsePauliOp's x/z boolean tables (terms, n), group phases and coefficients."""
    index = np.arange(1 << num_qubits, dtype=np.int64)
    weights = 1 << np.arange(num_qubits, dtype=np.int64)
    x_masks = paulis_x.astype(np.int64) @ weights
    z_masks = paulis_z.astype(np.int64) @ weights
    y_count = np.sum(paulis_x & paulis_z, axis=1)
    # P = (-i)^phase * i^{#Y} X^x Z^z  (Y = i X Z), so P|s> = factor (-1)^{popcount(z&s)} |s^x>.
    factors = coeffs * (-1j) ** phases * 1j ** y_count
    groups: dict[int, np.ndarray] = {}
    for x, z, f in zip(x_masks, z_masks, factors):
        parity = np.bitwise_count(index & z) & 1
        groups[int(x)] = groups.get(int(x), 0) + f * (1 - 2 * parity.astype(float))
    return CompiledObservable(1 << num_qubits, sorted(groups.items()))


def apply_observable(obs: CompiledObservable, state: np.ndarray) -> np.ndarray:
    """``O @ state`` over the last axis."""
    out = np.zeros_like(state)
    index = np.arange(state.shape[-1])
    for x, c in obs.groups:
        term = state * c.astype(state.dtype)
        out += np.take(term, index ^ x, axis=-1) if x else term
    return out


def expectation_values(obs: list[CompiledObservable], states: np.ndarray) -> np.ndarray:
    """(R, O) real expectation values of every observable on every state (R, 2^n)."""
    evs = np.zeros((states.shape[0], len(obs)))
    diagonal = [i for i, o in enumerate(obs) if o.is_diagonal]
    if diagonal:
        probs = states.real**2 + states.imag**2
        dmat = np.stack([obs[i].diagonal for i in diagonal], 1).astype(probs.dtype)
        evs[:, diagonal] = probs @ dmat
    for i, o in enumerate(obs):
        if i not in diagonal:
            applied = apply_observable(o, states)
            evs[:, i] = np.einsum("rs,rs->r", states.conj(), applied).real
    return evs


# ---------------------------------------------------------------------------------------------
# Adjoint Jacobian
# ---------------------------------------------------------------------------------------------


def adjoint_jacobian(
    compiled: CompiledCircuit,
    angles: np.ndarray,
    observables: list[CompiledObservable],
    obs_index: np.ndarray,
    dtype=np.complex128,
) -> np.ndarray:
    """d<O_{obs_index[r, k]}>/d angle_g for every row r: shape (R, K, G).

    Reverse mode with the K observables of a row as K cotangents (``lambda = O psi``), so the cost
    is K state sweeps per row whatever the number of parameters. Gates are un-applied instead of
    stored. Structure that makes it cheaper:

    * trailing permutations/diagonals are absorbed into Z-diagonal observables (a CNOT maps a
      Z-string to a Z-string, a diagonal commutes with it), and the last single-qubit layer's
      gradients are read from ``conj(psi) * G psi`` against those diagonals - one pass per
      parameter on R states instead of R*K;
    * all gates of a layer commute, so their generators are evaluated at one point with one
      stacked GEMM;
    * the product-state prefix is differentiated by contracting lambda with the other qubits'
      single-qubit states (divide and conquer, ~2 passes) instead of sweeping through it.
    """
    rows, k_obs = obs_index.shape
    grads = np.zeros((rows, k_obs, compiled.angles.num_angles))
    ops = compiled.ops
    used = np.unique(obs_index)
    real = real_dtype(dtype)

    vectors = prefix_vectors(compiled.prefix, angles).astype(dtype)
    psi = kron_states(vectors)
    for op in ops:
        psi = apply_op(psi, op, angles)

    remaining = len(ops)
    if all(observables[o].is_diagonal for o in used):
        diagonals = np.stack([o.diagonal for o in observables]).astype(real)  # (O, 2^n)
        while remaining and isinstance(ops[remaining - 1], (PermutationOp, DiagonalOp)):
            op = ops[remaining - 1]
            if isinstance(op, PermutationOp):
                moved = np.empty_like(diagonals)
                moved[:, op.source] = diagonals
                diagonals = moved
            psi = apply_op(psi, op, angles, inverse=True)
            remaining -= 1
        if remaining and isinstance(ops[remaining - 1], LayerOp):
            op = ops[remaining - 1]
            generated, targets = _generator_states(op, psi, angles)
            if targets:
                overlap = (psi.conj()[:, None] * generated).real  # (R, L, 2^n)
                per_obs = 2.0 * (overlap @ diagonals.T)  # (R, L, O)
                index = np.broadcast_to(obs_index[:, None, :], (rows, len(targets), k_obs))
                picked = np.take_along_axis(per_obs, index, axis=2)  # (R, L, K)
                np.add.at(grads, (slice(None), slice(None), targets), picked.transpose(0, 2, 1))
            lam = diagonals[obs_index] * psi[:, None]
            lam = apply_op(lam, op, angles, inverse=True)
            psi = apply_op(psi, op, angles, inverse=True)
            remaining -= 1
        else:
            lam = diagonals[obs_index] * psi[:, None]
    else:
        lam = np.empty((rows, k_obs, psi.shape[-1]), dtype=dtype)
        for o in used:
            applied = apply_observable(observables[o], psi)
            r_idx, k_idx = np.nonzero(obs_index == o)
            lam[r_idx, k_idx] = applied[r_idx]

    for op in reversed(ops[:remaining]):
        if isinstance(op, DiagonalOp) and op.angle_index.size:
            patterns, _ = op.arrays(real)
            overlap = (lam.conj() * psi[:, None]).imag  # (R, K, 2^n)
            np.add.at(grads, (slice(None), slice(None), op.angle_index),
                      -2.0 * (overlap @ patterns.T))
        elif isinstance(op, LayerOp):
            generated, targets = _generator_states(op, psi, angles)
            if targets:
                overlap = np.matmul(lam.conj(), generated.transpose(0, 2, 1))  # (R, K, L)
                np.add.at(grads, (slice(None), slice(None), targets), 2.0 * overlap.real)
        lam = apply_op(lam, op, angles, inverse=True)
        psi = apply_op(psi, op, angles, inverse=True)

    _prefix_gradients(compiled.prefix, angles, vectors, lam, grads)
    return grads


def _generator_states(op: LayerOp, psi: np.ndarray, angles: np.ndarray):
    """``(dM M^dagger)_q psi`` for every angle of every gate in the layer: (R, L, 2^n)."""
    states, targets = [], []
    for gate in op.gates:
        derivatives = gate_derivatives(gate, angles)
        if not derivatives:
            continue
        matrix = gate_matrices(gate, angles)
        for g, d in zip(gate.angle_index, derivatives):
            generator = d @ matrix.conj().transpose(0, 2, 1)
            states.append(apply_one_qubit(psi, generator, gate.qubit))
            targets.append(g)
    if not states:
        return None, []
    return np.stack(states, axis=1), targets


def _prefix_gradients(prefix: ProductPrefix, angles: np.ndarray, vectors: np.ndarray,
                      lam: np.ndarray, grads: np.ndarray) -> None:
    """Gradients of the product-state prefix: 2 Re <env_q | d v_q> for each qubit chain."""
    differentiable = [q for q, chain in enumerate(prefix.chains)
                      if any(gate.angle_index for gate in chain)]
    if not differentiable:
        return
    envs = environments(lam.conj(), vectors)  # (R, K, n, 2)
    rows = angles.shape[0]
    for q in differentiable:
        for g, tangent in _chain_tangents(prefix.chains[q], angles, rows):
            value = np.einsum("rki,ri->rk", envs[:, :, q], tangent)
            grads[:, :, g] += 2.0 * value.real


def _chain_tangents(chain: list[GateRef], angles: np.ndarray, rows: int):
    """d(M_m ... M_1 |0>)/d angle for every angle in a single-qubit chain: yields (g, (R, 2))."""
    matrices = [_rows(gate_matrices(gate, angles), rows) for gate in chain]
    partial = [np.tile(np.array([1.0, 0.0], dtype=complex), (rows, 1))]
    for m in matrices:
        partial.append(np.einsum("rij,rj->ri", m, partial[-1]))
    for j, gate in enumerate(chain):
        for g, d in zip(gate.angle_index, gate_derivatives(gate, angles)):
            tangent = np.einsum("rij,rj->ri", _rows(d, rows), partial[j])
            for m in matrices[j + 1:]:
                tangent = np.einsum("rij,rj->ri", m, tangent)
            yield g, tangent


def environments(tensor: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """env[r, k, q, i] = sum over basis states with bit q = i of tensor * prod_{q' != q} v_{q'}.

    ``tensor`` is (R, K, 2^n), ``vectors`` (R, n, 2). Divide and conquer: contracting half of the
    qubits at a time costs about two passes over ``tensor`` for all n environments.
    """
    rows, k_obs = tensor.shape[0], tensor.shape[1]
    n = vectors.shape[1]
    out = np.empty((rows, k_obs, n, 2), dtype=tensor.dtype)

    def recurse(t: np.ndarray, qubits: list[int]) -> None:
        if len(qubits) == 1:
            out[:, :, qubits[0]] = t
            return
        low, high = qubits[: len(qubits) // 2], qubits[len(qubits) // 2:]
        n_high, n_low = 1 << len(high), 1 << len(low)
        # Both contractions are stacked GEMVs over rows (a broadcast batch axis would make numpy
        # fall back to a slow non-BLAS loop).
        k_low = kron_states(vectors[:, low])[:, :, None]  # (R, 2^|low|, 1)
        recurse((t.reshape(rows, k_obs * n_high, n_low) @ k_low).reshape(rows, k_obs, n_high),
                high)
        k_high = kron_states(vectors[:, high])[:, None, None, :]  # (R, 1, 1, 2^|high|)
        recurse((k_high @ t.reshape(rows, k_obs, n_high, n_low))[..., 0, :], low)

    recurse(tensor, list(range(n)))
    return out
