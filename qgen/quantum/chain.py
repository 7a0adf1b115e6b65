"""Exact matrix-product-state (MPS) simulation for circuits that entangle along the qubit chain: the
compiled program (``compile_chain``) and the numbers of its steps.

Why: the bottleneck ansatz (product encoding, single-qubit layers, a CNOT ladder) crosses every cut
of the chain 0-1-...-(n-1) with one CNOT per layer, so its state is *exactly* an MPS of bond
dimension 2^layers (8 for 3 layers) however many qubits it has. A 16-qubit, batch-64 Jacobian is
then a few hundred contractions of (64, 8, 2, 8) tensors instead of 16 adjoint sweeps over
64 x 2^16 amplitudes.

Nothing is truncated. A two-qubit gate on sites ``lo < hi`` is applied as its operator-Schmidt
decomposition ``G = sum_s A_s (x) B_s``: ``A_s`` acts on ``lo``, ``B_s`` on ``hi``, and the index
``s`` is carried across the sites in between, so every bond the gate spans grows by its rank ``r``
(2 for cx/cz/rzz/cp/crz, 4 for swap). Bond dimensions therefore follow from the circuit alone
(``ChainCircuit.bonds``) and the estimator decides before simulating whether this path is cheaper
than the statevector kernels.

The gate matrices and their derivatives are ``gate_ir``'s closed forms (shared with the
statevector kernels). The rest of the method, split as the statevector side is:

* ``chain_simulate`` - the forward pass in torch (batched small matrix products), with a tape;
* ``chain_readout``  - environments, expectation values of Pauli strings and their cotangents;
* ``chain_adjoint``  - the exact Jacobian and VJP: reverse mode written out, readout cotangents
  from environments, then one pass back through the tape.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from qiskit.circuit import QuantumCircuit

from qgen.quantum.gate_ir import (
    DIAGONAL_GATES,
    LAYER_GATES,
    AngleBuilder,
    AngleProgram,
    GateRef,
    gate_instructions,
    one_qubit_derivatives,
    one_qubit_matrix,
)

# Gates of the gate IR that are local enough for a chain (at most two qubits).
ONE_QUBIT_GATES = LAYER_GATES | {"rz", "p", "u1", "x", "z", "s", "sdg", "t", "tdg"}
CONSTANT_TWO_QUBIT_GATES = {"cx", "cz", "swap"}
PARAMETRIZED_TWO_QUBIT_GATES = {"rzz", "cp", "cu1", "crz"}
SUPPORTED = ONE_QUBIT_GATES | CONSTANT_TWO_QUBIT_GATES | PARAMETRIZED_TWO_QUBIT_GATES

@dataclass(frozen=True)
class SiteGates:
    """Consecutive single-qubit gates on one site, applied as one fused 2x2 matrix."""

    qubit: int
    gates: tuple[GateRef, ...]


@dataclass(frozen=True, eq=False)
class PairGate:
    """A two-qubit gate with its operator-Schmidt basis on the lower site.

    ``basis`` (r, 2, 2) spans the lower-site factors of the gate for every parameter value, so
    ``G = sum_s basis_s (x) B_s`` with ``B_s = <basis_s, G>`` (linear in G, hence differentiable).
    """

    name: str
    qubits: tuple[int, int]  # as in the circuit: qubits[0] is bit 0 of the gate's matrix
    angle_index: tuple[int, ...]
    basis: np.ndarray  # (r, 2, 2)
    constant: np.ndarray | None  # (4, 4) site-ordered matrix when the gate has no parameters

    @property
    def lo(self) -> int:
        return min(self.qubits)

    @property
    def hi(self) -> int:
        return max(self.qubits)

    @property
    def rank(self) -> int:
        return self.basis.shape[0]


@dataclass
class ChainCircuit:
    num_qubits: int
    angles: AngleProgram
    steps: list  # SiteGates | PairGate, in application order
    bonds: tuple[int, ...]  # final bond dimension of each cut (q, q+1)
    work_per_row: float  # complex multiply-adds per parameter row (simulation + readout)

    @property
    def max_bond(self) -> int:
        return max(self.bonds, default=1)


def compile_chain(circuit: QuantumCircuit) -> ChainCircuit:
    """Translate ``circuit`` into chain steps; raises ``UnsupportedOperationError``."""
    n = circuit.num_qubits
    builder = AngleBuilder(circuit)
    steps: list = []
    pending: list[list[GateRef]] = [[] for _ in range(n)]

    def flush(q: int) -> None:
        if pending[q]:
            steps.append(SiteGates(q, tuple(pending[q])))
            pending[q] = []

    for op, qubits, angle_index in gate_instructions(circuit, builder, SUPPORTED,
                                                     "the chain (MPS) simulator"):
        name, qubits = op.name, tuple(qubits)
        if len(qubits) == 1:
            pending[qubits[0]].append(GateRef(name, qubits[0], angle_index))
            continue
        for q in range(min(qubits), max(qubits) + 1):
            flush(q)
        steps.append(_pair_gate(op, qubits, angle_index))
    for q in range(n):
        flush(q)
    bonds, work = _plan_bonds(n, steps)
    return ChainCircuit(n, builder.build(), steps, bonds, work)


def _pair_gate(op, qubits: tuple[int, int], angle_index: tuple[int, ...]) -> PairGate:
    """Find a parameter-independent lower-site basis from qiskit's own matrices of the gate."""
    if op.params:
        rng = np.random.default_rng(0)
        samples = []
        for _ in range(4):
            gate = op.copy()
            gate.params = [float(v) for v in rng.uniform(-np.pi, np.pi, len(op.params))]
            samples.append(_site_ordered(gate.to_matrix()[None], qubits)[0])
        constant = None
    else:
        constant = _site_ordered(op.to_matrix()[None], qubits)[0]
        samples = [constant]
    u, s, _ = np.linalg.svd(np.concatenate(samples, axis=1))
    rank = int(np.sum(s > 1e-10 * s[0]))
    return PairGate(op.name, qubits, angle_index, u[:, :rank].T.reshape(rank, 2, 2), constant)


def _site_ordered(matrix: np.ndarray, qubits: tuple[int, int]) -> np.ndarray:
    """(R, 4, 4) qiskit matrices (index b0 + 2 b1) -> rows (o_lo, i_lo), columns (o_hi, i_hi)."""
    m = matrix.reshape(matrix.shape[0], 2, 2, 2, 2)  # [r, o1, o0, i1, i0]
    order = (0, 2, 4, 1, 3) if qubits[0] < qubits[1] else (0, 1, 3, 2, 4)
    return m.transpose(order).reshape(matrix.shape[0], 4, 4)


BOND_CEILING = 1 << 40  # planning stops counting here (no such bond is ever simulated)


def _plan_bonds(n: int, steps: list) -> tuple[tuple[int, ...], float]:
    """Bond dimensions after the circuit (capped at ``BOND_CEILING``) and the contraction work per
    row (multiply-adds)."""
    bonds = [1] * (n + 1)  # bonds[q] is the bond left of site q; bonds[0] = bonds[n] = 1
    work = 0.0
    for step in steps:
        if isinstance(step, SiteGates):
            q = step.qubit
            work += 4 * bonds[q] * bonds[q + 1]
            continue
        for q in range(step.lo, step.hi + 1):
            work += 4 * step.rank * bonds[q] * bonds[q + 1]
        for q in range(step.lo + 1, step.hi + 1):
            bonds[q] = min(bonds[q] * step.rank, BOND_CEILING)
    # Readout: left and right environments plus one transfer per term and site (~chi^3 each).
    work += sum(4 * bonds[q] * bonds[q + 1] * max(bonds[q], bonds[q + 1]) for q in range(n)) * 3
    return tuple(bonds[1:n]), work


def rows_per_chunk(circuit: ChainCircuit, max_elements: int = 1 << 25) -> int:
    """Rows simulated together: the Jacobian's tape keeps about one site tensor per step alive."""
    bonds = (1, *circuit.bonds, 1)
    per_row = sum(2 * bonds[q] * bonds[q + 1] for q in range(circuit.num_qubits))
    return max(1, max_elements // (per_row * max(1, len(circuit.steps))))


# ---------------------------------------------------------------------------------------------
# Gate matrices (numpy, per row: gate_ir's definitions) and their derivatives
# ---------------------------------------------------------------------------------------------

# The 4 basis states of a two-qubit gate in qiskit order (index = b0 + 2 b1, b0 = qubits[0]).
_PAIR_BITS = [np.array([0.0, 1.0, 0.0, 1.0]), np.array([0.0, 0.0, 1.0, 1.0])]


def site_matrices_batched(steps: list[SiteGates], angles: np.ndarray, derivatives: bool) -> list:
    """Per step, its fused matrix (R or 1, 2, 2) and, if asked, per angle (angle index,
    d fused / d angle); angles equal on every row (the shared weights) give one matrix for all rows.

    Computed for all steps of the same gate sequence together, one numpy evaluation per gate
    kind and position, instead of a few tiny array operations per gate (at 16 qubits those
    made up half the simulation's time).
    """
    found: list = [None] * len(steps)
    groups: dict[tuple, list[int]] = {}
    for i, step in enumerate(steps):
        # rows share a step's angles (the weights) -> one matrix for all rows, as _column decides
        shared = all(np.all(angles[:, a] == angles[0, a]) for g in step.gates for a in g.angle_index)
        key = (tuple((g.name, len(g.angle_index)) for g in step.gates), shared)
        groups.setdefault(key, []).append(i)
    for (signature, shared), members in groups.items():
        rows = angles[:1] if shared else angles
        mats, derivs, index = [], [], []
        for j, (name, count) in enumerate(signature):
            cols = [np.array([steps[i].gates[j].angle_index[k] for i in members], dtype=np.int64)
                    for k in range(count)]
            args = [rows[:, c] for c in cols]  # each (R, S)
            m = one_qubit_matrix(name, args)
            mats.append(np.broadcast_to(m, (rows.shape[0], len(members), 2, 2)) if m.ndim == 3
                        else m)
            if derivatives:
                derivs.append(one_qubit_derivatives(name, args))
                index.append(cols)
        prefix = [mats[0]]
        for m in mats[1:]:
            prefix.append(m @ prefix[-1])
        per_step: list[list] = [[] for _ in members]
        if derivatives:
            suffix = np.broadcast_to(np.eye(2, dtype=complex), prefix[-1].shape)
            for j in range(len(mats) - 1, -1, -1):
                for k, d in enumerate(derivs[j]):
                    full = suffix @ d @ prefix[j - 1] if j else suffix @ d
                    for s in range(len(members)):
                        per_step[s].append((int(index[j][k][s]), full[:, s]))
                suffix = suffix @ mats[j]
        for s, i in enumerate(members):
            found[i] = (prefix[-1][:, s], per_step[s])
    return found


def pair_matrices(gate: PairGate, angles: np.ndarray):
    """Site-ordered (R or 1, 4, 4) matrix and, per angle, (angle index, its derivative)."""
    if gate.constant is not None:
        return gate.constant[None], []
    angle_patterns, constant = DIAGONAL_GATES[gate.name]
    patterns = angle_patterns(_PAIR_BITS)  # one (4,) pattern per angle
    phase = sum(angles[:, a, None] * p for a, p in zip(gate.angle_index, patterns))
    if constant is not None:
        phase = phase + constant(_PAIR_BITS)
    diagonal = np.exp(1j * phase)  # (R, 4)
    eye = np.eye(4)
    matrix = _site_ordered(diagonal[:, :, None] * eye, gate.qubits)
    derivatives = [(a, _site_ordered((1j * p * diagonal)[:, :, None] * eye, gate.qubits))
                   for a, p in zip(gate.angle_index, patterns)]
    return matrix, derivatives


def upper_factors(gate: PairGate, matrix: np.ndarray) -> np.ndarray:
    """B_s = sum_{o,i} conj(basis_s[o, i]) G[(o, i), :] as (R or 1, r, 2, 2)."""
    basis = gate.basis.reshape(gate.rank, 4).conj()
    return np.einsum("sa,rab->rsb", basis, matrix).reshape(matrix.shape[0], gate.rank, 2, 2)
