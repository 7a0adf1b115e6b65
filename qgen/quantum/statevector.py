"""Vectorized state-vector kernels: compile a circuit once, simulate every binding of a PUB at once.

A circuit (walked with ``gate_ir.gate_instructions``) is compiled into a short list of fused
operations:

* ``ProductPrefix``  - single-qubit gates that act before a qubit meets any multi-qubit gate. The
  state after them is a product state, built as one Kronecker product instead of gate by gate.
* ``DiagonalOp``     - a run of diagonal gates (rz, p, z, s, t, cz, rzz, cp, ...) fused into one phase
  vector: ``phase = exp(i * (angles @ patterns + constant))`` (one GEMM, one multiply).
* ``PermutationOp``  - a run of basis permutations (x, cx, swap, ccx) fused into one gather index.
* ``LayerOp``        - single-qubit gates on distinct qubits, applied one qubit at a time on a
  ``(rows, 2^(n-q-1), 2, 2^q)`` view.

Also here: the kernels that apply them (``apply_op``, ``simulate_chunks``) and compiled Pauli-sum
observables (``compile_observable``, ``expectation_values``). Reverse mode lives in ``adjoint``.

Kernels are numpy (complex128 by default, complex64 optional): on a small shared CPU numpy's
single-threaded complex loops beat torch's by 10-50x (torch complex ops are poorly vectorized and
its thread pool spins when cores are contended).

Conventions follow Qiskit: qubit ``q`` is bit ``q`` of the basis index (little endian).
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
from qiskit.circuit import QuantumCircuit
from threadpoolctl import threadpool_limits

from qgen.quantum.gate_ir import (
    DIAGONAL_GATES,
    IGNORED,
    PREFIX_GATES,
    SUPPORTED,
    AngleBuilder,
    AngleProgram,
    GateRef,
    UnsupportedOperationError,
    gate_generators,
    gate_instructions,
    gate_kind,
    gate_matrices,
)

@contextlib.contextmanager
def blas_threads(limit: int | None) -> Iterator[None]:
    """Limit BLAS threads for the duration of a call (``None``: leave BLAS alone).

    The kernels are many small stacked GEMVs/GEMMs; on a small or shared CPU, multi-threaded
    OpenBLAS spends more time synchronising than computing (5-10x slower measured on 2 busy cores).
    """
    if limit is None:
        yield
        return
    with threadpool_limits(limits=limit, user_api="blas"):
        yield



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


@dataclass
class ProductPrefix:
    chains: list[list[GateRef]]  # per qubit, in application order


class SplitPatterns:
    """K real functions over the basis states, each stored as ``low[l] + high[h]`` where it splits.

    With ``s = h * L + l`` (L = 2^(n//2)) a function of the low qubits only, of the high qubits
    only, or a sum of such terms (rz/p phases, Z readouts: one bit each) is two short vectors.
    Contracting (R, 2^n) values with it is then two partial sums of the values and two tiny
    GEMMs, instead of a GEMM that streams the (K, 2^n) table (8 MiB for 16 Z readouts at 16
    qubits, more than the cache-sized chunk it is applied to). Functions that do not split (a
    ZZ across the halves, rzz across them) stay dense.
    """

    def __init__(self, patterns: np.ndarray, num_qubits: int):
        k = patterns.shape[0]
        self.num_low = 1 << (num_qubits // 2)
        self.num_high = (1 << num_qubits) // self.num_low
        table = patterns.reshape(k, self.num_high, self.num_low)
        low = table[:, 0, :]
        high = table[:, :, 0] - table[:, :1, 0]
        error = np.abs(table - high[:, :, None] - low[:, None, :]).max(axis=(1, 2), initial=0.0)
        self.split = np.flatnonzero(error <= 1e-12 * (1.0 + np.abs(table).max(initial=0.0)))
        self.dense = np.setdiff1d(np.arange(k), self.split)
        self.low, self.high = low[self.split], high[self.split]  # (S, L), (S, H)
        self.dense_patterns = patterns[self.dense]  # (D, 2^n)
        self.size = k

    def contract(self, values: np.ndarray) -> np.ndarray:
        """``values @ patterns.T`` for real values (R, 2^n): (R, K)."""
        rows = values.shape[0]
        out = np.empty((rows, self.size), dtype=values.dtype)
        if self.split.size:
            table = values.reshape(rows, self.num_high, self.num_low)
            out[:, self.split] = (table.sum(axis=1) @ self.low.T.astype(values.dtype)
                                  + table.sum(axis=2) @ self.high.T.astype(values.dtype))
        if self.dense.size:
            out[:, self.dense] = values @ self.dense_patterns.T.astype(values.dtype)
        return out

    def combine(self, weights: np.ndarray) -> np.ndarray:
        """``weights @ patterns`` for weights (R, K): (R, 2^n)."""
        rows = weights.shape[0]
        w = weights[:, self.split]
        out = (w @ self.high)[:, :, None] + (w @ self.low)[:, None, :]  # (R, H, L), one pass
        if self.dense.size:
            out += (weights[:, self.dense] @ self.dense_patterns).reshape(out.shape)
        return out.reshape(rows, -1)


@dataclass
class DiagonalOp:
    angle_index: np.ndarray  # (K,)
    patterns: np.ndarray  # (K, 2^n) float
    constant: np.ndarray  # (2^n,) float
    _cast: dict = field(default_factory=dict, repr=False)
    _split: SplitPatterns | None = field(default=None, repr=False)

    def arrays(self, real_dtype) -> tuple[np.ndarray, np.ndarray]:
        key = np.dtype(real_dtype)
        if key not in self._cast:
            self._cast[key] = (self.patterns.astype(key), self.constant.astype(key))
        return self._cast[key]

    def split_patterns(self) -> SplitPatterns:
        if self._split is None:
            self._split = SplitPatterns(self.patterns, self.patterns.shape[1].bit_length() - 1)
        return self._split


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
    # per-call constants derived from the circuit and its observables (adjoint's readouts)
    cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def dim(self) -> int:
        return 1 << self.num_qubits


def compile_circuit(circuit: QuantumCircuit) -> CompiledCircuit:
    """Translate ``circuit`` into fused operations; raises ``UnsupportedOperationError``."""
    n = circuit.num_qubits
    builder = AngleBuilder(circuit)
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



def _fuse(program, n: int) -> list:
    """Group consecutive gates of the same kind into one fused operation."""
    index = np.arange(1 << n, dtype=np.int64)
    bits = [((index >> q) & 1).astype(float) for q in range(n)]
    groups: list[tuple[str, list]] = []
    for name, qubits, angle_index in program:
        kind = gate_kind(name)
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
            vectors[:, q] = np.einsum("rij,rj->ri", broadcast_rows(gate_matrices(gate, angles), rows),
                                      vectors[:, q])
    return vectors


def broadcast_rows(matrix: np.ndarray, rows: int) -> np.ndarray:
    return np.broadcast_to(matrix, (rows, *matrix.shape[1:]))


def kron_states(vectors: np.ndarray) -> np.ndarray:
    """(R, m, 2) per-qubit vectors (qubit j = bit j) -> (R, 2^m) product state."""
    rows, m = vectors.shape[0], vectors.shape[1]
    if m <= 1:
        return vectors[:, 0] if m else np.ones((rows, 1), dtype=vectors.dtype)
    # Halves first, then one outer product: multiplying in one qubit at a time would make the
    # last, largest products run with an inner loop of length 2 (8 ns/amplitude at 16 qubits).
    low, high = kron_states(vectors[:, : m // 2]), kron_states(vectors[:, m // 2:])
    return (high[:, :, None] * low[:, None, :]).reshape(rows, -1)


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
    for block in layer_blocks(op, state.shape[-1].bit_length() - 1):
        state = apply_block(state, block, block_matrix(block, angles, inverse=inverse))
    return state


# A layer's gates commute (distinct qubits), so runs of BLOCK_QUBITS neighbouring qubits are applied
# as one 2^k x 2^k Kronecker product: one matrix product per block instead of one strided pass per
# qubit. Measured (16 qubits, one core): a strided single-qubit pass costs 2-100 ns/amplitude on
# the low qubits (short inner runs), a fused block of 3 about 1-1.5 ns/amplitude.
BLOCK_QUBITS = 3


@dataclass(frozen=True)
class LayerBlock:
    start: int  # lowest qubit of the block
    width: int  # qubits in the block (BLOCK_QUBITS, fewer at the top)
    gates: tuple[GateRef, ...]  # gates of the layer on those qubits


def layer_blocks(op: LayerOp, num_qubits: int) -> list[LayerBlock]:
    """The layer's gates grouped by blocks of BLOCK_QUBITS consecutive qubits."""
    blocks = []
    for start in range(0, num_qubits, BLOCK_QUBITS):
        width = min(BLOCK_QUBITS, num_qubits - start)
        gates = tuple(g for g in op.gates if start <= g.qubit < start + width)
        if gates:
            blocks.append(LayerBlock(start, width, gates))
    return blocks


def block_matrix(block: LayerBlock, angles: np.ndarray, *, inverse: bool = False,
                 replace: dict | None = None) -> np.ndarray:
    """(R or 1, 2^w, 2^w) Kronecker product of the block's gates (identity where none).

    ``replace`` maps a qubit to a 2x2 (R or 1) matrix used instead of its gate (generators).
    """
    by_qubit = {g.qubit: g for g in block.gates}
    out = np.ones((1, 1, 1), dtype=complex)
    for q in range(block.start, block.start + block.width):  # higher qubit = outer factor
        if replace is not None and q in replace:
            m = replace[q]
        elif q in by_qubit:
            m = gate_matrices(by_qubit[q], angles)
            if inverse:
                m = m.conj().transpose(0, 2, 1)
        else:
            m = np.eye(2, dtype=complex)[None]
        rows = max(out.shape[0], m.shape[0])
        d = out.shape[1]
        out = np.einsum("rab,rcd->racbd", broadcast_rows(m, rows), broadcast_rows(out, rows)
                        ).reshape(rows, 2 * d, 2 * d)
    return out


def apply_block(state: np.ndarray, block: LayerBlock, matrix: np.ndarray) -> np.ndarray:
    """Apply a block matrix ((R or 1, d, d)) to states (R, ..., 2^n), out of place."""
    rows, d, low = state.shape[0], 1 << block.width, 1 << block.start
    if matrix.shape[0] == 1:
        if not np.any(matrix.imag) and low > 1:
            # Real (ry, h, ...): act on the interleaved re/im floats, a real GEMM.
            real = np.ascontiguousarray(state).view(real_dtype(state.dtype))
            out = np.matmul(matrix[0].real.astype(real.dtype), real.reshape(-1, d, 2 * low))
            return out.reshape(real.shape).view(state.dtype).reshape(state.shape)
        m = matrix[0].astype(state.dtype, copy=False)
        if low == 1:  # lowest block: one GEMM over all amplitudes
            return (state.reshape(-1, d) @ m.T).reshape(state.shape)
        return np.matmul(m, state.reshape(-1, d, low)).reshape(state.shape)
    m = matrix.astype(state.dtype, copy=False)
    view = state.reshape(rows, -1, d, low)
    out = np.empty_like(view)
    for r in range(rows):  # per-row gates (input-dependent angles): one batched product per row
        if low == 1:
            np.matmul(view[r, :, :, 0], m[r].T, out=out[r, :, :, 0])
        else:
            np.matmul(m[r], view[r], out=out[r])
    return out.reshape(state.shape)


# ---------------------------------------------------------------------------------------------
# Prepared operations and cache-sized row chunks (the fast path of simulate and the VJP)
# ---------------------------------------------------------------------------------------------

# At 16 qubits one row is 1 MiB of complex128: a chunk of 32 rows (32 MiB per state array) streams
# from DRAM on every pass, ~4-5 ns/amplitude per kernel; at 4 rows the state, the cotangent and
# their spare buffers (~16 MiB) stay in the 32 MiB L3 and the same kernels run at 0.3-1.1
# ns/amplitude (measured on the project CPU, one core). Rows are therefore processed in chunks of
# at most this many amplitudes, whatever the memory bound allows.
CACHE_AMPLITUDES = 1 << 18


def cache_rows(num_qubits: int, memory_rows: int | None = None) -> int:
    """Rows per chunk: inside the last-level cache, and inside ``memory_rows`` when given."""
    rows = max(1, CACHE_AMPLITUDES >> num_qubits)
    return rows if memory_rows is None else max(1, min(rows, memory_rows))


@dataclass
class PreparedBlock:
    """One layer block's matrices for a set of rows: (1 or R, d, d) in the state dtype."""

    block: LayerBlock
    matrix: np.ndarray
    inverse: np.ndarray  # conjugate transpose
    # Real block matrices act on the interleaved re/im floats (a real GEMM, half the arithmetic).
    # For the lowest block (qubit 0 is the fastest index) the float view interleaves re/im inside
    # each amplitude, so there the real matrix is kron(M, I_2), applied as (., 2d) @ (2d, 2d).
    real: np.ndarray | None = None
    real_inverse: np.ndarray | None = None

    @classmethod
    def of(cls, block: LayerBlock, matrix: np.ndarray, dtype) -> PreparedBlock:
        matrix = matrix.astype(dtype)
        inverse = np.ascontiguousarray(matrix.conj().transpose(0, 2, 1))
        if matrix.shape[0] > 1 or np.any(matrix.imag):
            return cls(block, matrix, inverse)
        real = matrix[0].real
        if block.start == 0:
            eye = np.eye(2, dtype=real.dtype)
            return cls(block, matrix, inverse, np.ascontiguousarray(np.kron(real, eye).T),
                       np.ascontiguousarray(np.kron(real.T, eye).T))
        return cls(block, matrix, inverse, real, np.ascontiguousarray(real.T))

    def rows(self, start: int, stop: int) -> PreparedBlock:
        if self.matrix.shape[0] == 1:
            return self
        return PreparedBlock(self.block, self.matrix[start:stop], self.inverse[start:stop])


@dataclass
class PreparedOp:
    """A fused operation with its angle-dependent arrays evaluated (rows of 1 when shared)."""

    op: DiagonalOp | PermutationOp | LayerOp
    phase: np.ndarray | None = None  # DiagonalOp: (1 or R, 2^n) exp(i phase), and its conjugate
    phase_inverse: np.ndarray | None = None
    blocks: tuple[PreparedBlock, ...] = ()
    # LayerOp: (angle column, qubit, generator dM M^dagger (1 or R, 2, 2)) per differentiable angle
    generators: tuple[tuple[int, int, np.ndarray], ...] = ()


def op_angle_index(op) -> np.ndarray:
    """Angle columns an operation depends on."""
    if isinstance(op, DiagonalOp):
        return op.angle_index
    if isinstance(op, LayerOp):
        return np.asarray([g for gate in op.gates for g in gate.angle_index], dtype=np.int64)
    return np.zeros(0, dtype=np.int64)


def prepare_op(op, angles: np.ndarray, num_qubits: int, dtype) -> PreparedOp:
    if isinstance(op, DiagonalOp):
        phase = diagonal_phase(op, angles, dtype)
        return PreparedOp(op, phase, phase.conj())
    if isinstance(op, LayerOp):
        blocks = tuple(PreparedBlock.of(block, block_matrix(block, angles), dtype)
                       for block in layer_blocks(op, num_qubits))
        return PreparedOp(op, blocks=blocks, generators=tuple(layer_generators(op, angles)))
    return PreparedOp(op)


def layer_generators(op: LayerOp, angles: np.ndarray) -> Iterator[tuple[int, int, np.ndarray]]:
    """``(angle column, qubit, dM M^dagger)`` for every differentiable angle of a layer."""
    for gate in op.gates:
        for g, generator in zip(gate.angle_index, gate_generators(gate, angles)):
            yield g, gate.qubit, generator


class PreparedOps:
    """The ops of a circuit prepared for every chunk of a call's angle rows.

    Ops whose angles are equal on every row (weights shared by a batch) are prepared once for the
    whole call; the others per chunk. Rebuilding phases and Kronecker blocks for each small chunk
    would otherwise cost as much as the kernels themselves.
    """

    def __init__(self, ops: list, angles: np.ndarray, num_qubits: int, dtype):
        self.ops, self.angles, self.num_qubits, self.dtype = ops, angles, num_qubits, dtype
        self.shared: dict[int, PreparedOp] = {}
        for i, op in enumerate(ops if angles.shape[0] else []):
            cols = angles[:, op_angle_index(op)]
            if np.all(cols == cols[:1]):
                self.shared[i] = prepare_op(op, angles[:1], num_qubits, dtype)

    def chunk(self, start: int, stop: int) -> list[PreparedOp]:
        return [self.shared.get(i) or prepare_op(op, self.angles[start:stop], self.num_qubits,
                                                 self.dtype)
                for i, op in enumerate(self.ops)]


class StateBuffers:
    """A chunk's states (R, 2^n) and a spare buffer: out-of-place kernels write into the spare
    and swap, so no pass allocates (fresh multi-MiB arrays cost page faults on every call)."""

    def __init__(self, state: np.ndarray):
        self.state = np.ascontiguousarray(state)
        self.spare = np.empty_like(self.state)

    def swap(self) -> None:
        self.state, self.spare = self.spare, self.state

    def apply(self, prepared: PreparedOp, *, inverse: bool = False) -> None:
        op = prepared.op
        if isinstance(op, DiagonalOp):
            np.multiply(self.state, prepared.phase_inverse if inverse else prepared.phase,
                        out=self.state)
        elif isinstance(op, PermutationOp):
            # mode="clip": with the default "raise" numpy gathers into a temporary first
            np.take(self.state, op.inverse if inverse else op.source, axis=-1, out=self.spare,
                    mode="clip")
            self.swap()
        else:
            blocks = prepared.blocks
            for pb in blocks:  # a layer's blocks commute: any order, forward or inverse
                apply_prepared_block(self.state, pb, self.spare, inverse=inverse)
                self.swap()


def apply_prepared_block(state: np.ndarray, pb: PreparedBlock, out: np.ndarray, *,
                         inverse: bool = False) -> None:
    """``out = block matrix (or its inverse) applied to state``; state and out are (R, 2^n)."""
    d, low = 1 << pb.block.width, 1 << pb.block.start
    real = pb.real_inverse if inverse else pb.real
    if real is not None:
        floats, out_floats = state.view(real.dtype), out.view(real.dtype)
        if low == 1:  # (amplitude groups, d x re/im) @ kron(M, I_2)^T: one real GEMM
            np.matmul(floats.reshape(-1, 2 * d), real, out=out_floats.reshape(-1, 2 * d))
        else:
            np.matmul(real, floats.reshape(-1, d, 2 * low), out=out_floats.reshape(-1, d, 2 * low))
        return
    matrix = pb.inverse if inverse else pb.matrix
    if matrix.shape[0] == 1:
        if low == 1:
            np.matmul(state.reshape(-1, d), matrix[0].T, out=out.reshape(-1, d))
        else:
            np.matmul(matrix[0], state.reshape(-1, d, low), out=out.reshape(-1, d, low))
        return
    rows = state.shape[0]
    view, out_view = state.reshape(rows, -1, d, low), out.reshape(rows, -1, d, low)
    for r in range(rows):  # per-row gates (input-dependent angles): one batched product per row
        if low == 1:
            np.matmul(view[r, :, :, 0], matrix[r].T, out=out_view[r, :, :, 0])
        else:
            np.matmul(matrix[r], view[r], out=out_view[r])


def simulate_chunks(compiled: CompiledCircuit, angles: np.ndarray, dtype=np.complex128,
                    rows_per_chunk: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """``(first row, final states of the chunk)`` for cache-sized chunks of the angle rows."""
    per_chunk = rows_per_chunk or cache_rows(compiled.num_qubits)
    prepared = PreparedOps(compiled.ops, angles, compiled.num_qubits, dtype)
    for start in range(0, angles.shape[0], per_chunk):
        stop = min(start + per_chunk, angles.shape[0])
        buffers = StateBuffers(
            kron_states(prefix_vectors(compiled.prefix, angles[start:stop]).astype(dtype)))
        for op in prepared.chunk(start, stop):
            buffers.apply(op)
        yield start, buffers.state


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
        evs[:, diagonal] = diagonal_readout([obs[i] for i in diagonal]).contract(
            probabilities(states))
    for i, o in enumerate(obs):
        if i not in diagonal:
            applied = apply_observable(o, states)
            evs[:, i] = np.einsum("rs,rs->r", states.conj(), applied).real
    return evs


def probabilities(states: np.ndarray) -> np.ndarray:
    """|states|^2 (R, 2^n) real, in one pass over the re/im floats (no complex temporaries)."""
    floats = states.view(real_dtype(states.dtype)).reshape(*states.shape, 2)
    return np.einsum("...i,...i->...", floats, floats)


# Z-diagonal observables as SplitPatterns, for the observable lists of recent calls. Keyed by the
# objects' ids and checked through weak references (an id can be reused once its object is gone;
# holding the objects themselves would keep (2^n)-sized tables of finished estimators alive).
_READOUT_CACHE: dict[tuple[int, ...], tuple[tuple, SplitPatterns]] = {}
_READOUT_CACHE_LIMIT = 16


def cached_for(cache: dict, limit: int, objects: list, build):
    """``build()`` cached under the identity of ``objects`` (weakly referenced), ``limit`` entries."""
    key = tuple(id(o) for o in objects)
    hit = cache.get(key)
    if hit is not None and all(ref() is o for ref, o in zip(hit[0], objects)):
        return hit[1]
    if len(cache) >= limit:
        cache.pop(next(iter(cache)))
    value = build()
    cache[key] = (tuple(weakref.ref(o) for o in objects), value)
    return value


def diagonal_readout(observables: list[CompiledObservable]) -> SplitPatterns:
    """The observables' real diagonals (O, 2^n) as SplitPatterns (cached for recent lists)."""
    return cached_for(_READOUT_CACHE, _READOUT_CACHE_LIMIT, observables, lambda: SplitPatterns(
        np.stack([o.diagonal for o in observables]), observables[0].dim.bit_length() - 1))
