"""Exact matrix-product-state (MPS) simulation for circuits that entangle along the qubit chain.

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

The contraction is written in torch so that the exact Jacobian comes from reverse-mode autodiff,
one cotangent per observable, all cotangents in one batched backward (``is_grads_batched``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from qiskit.circuit import ControlFlowOp, QuantumCircuit

from qgen.quantum.statevector import (
    FIXED_1Q,
    IGNORED,
    LAYER_GATES,
    AngleProgram,
    GateRef,
    UnsupportedOperationError,
    _AngleBuilder,
)

# Gates of the statevector path that are local enough for a chain (at most two qubits).
ONE_QUBIT_GATES = LAYER_GATES | {"rz", "p", "u1", "x", "z", "s", "sdg", "t", "tdg"}
CONSTANT_TWO_QUBIT_GATES = {"cx", "cz", "swap"}
PARAMETRIZED_TWO_QUBIT_GATES = {"rzz", "cp", "cu1", "crz"}
SUPPORTED = ONE_QUBIT_GATES | CONSTANT_TWO_QUBIT_GATES | PARAMETRIZED_TWO_QUBIT_GATES

_TORCH_COMPLEX = {np.dtype(np.complex64): torch.complex64, np.dtype(np.complex128): torch.complex128}


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
    builder = _AngleBuilder(circuit)
    steps: list = []
    pending: list[list[GateRef]] = [[] for _ in range(n)]

    def flush(q: int) -> None:
        if pending[q]:
            steps.append(SiteGates(q, tuple(pending[q])))
            pending[q] = []

    for inst in circuit.data:
        op = inst.operation
        name = op.name
        if name in IGNORED:
            continue
        if isinstance(op, ControlFlowOp) or inst.clbits or getattr(op, "condition", None):
            raise UnsupportedOperationError(
                f"operation {name!r} needs classical bits or control flow; the exact estimator "
                "only simulates unitary gates")
        if name not in SUPPORTED:
            raise UnsupportedOperationError(
                f"gate {name!r} is not supported by the chain (MPS) simulator; "
                f"transpile to {sorted(SUPPORTED)}")
        qubits = tuple(circuit.find_bit(q).index for q in inst.qubits)
        angle_index = tuple(builder.add(p) for p in op.params)
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


def _site_ordered(matrix, qubits: tuple[int, int]):
    """(R, 4, 4) qiskit matrices (index b0 + 2 b1) -> rows (o_lo, i_lo), columns (o_hi, i_hi)."""
    m = matrix.reshape(matrix.shape[0], 2, 2, 2, 2)  # [r, o1, o0, i1, i0]
    order = (0, 2, 4, 1, 3) if qubits[0] < qubits[1] else (0, 1, 3, 2, 4)
    m = m.permute(*order) if isinstance(m, torch.Tensor) else m.transpose(order)
    return m.reshape(matrix.shape[0], 4, 4)


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


# ---------------------------------------------------------------------------------------------
# Gate matrices in torch (differentiable in the angles)
# ---------------------------------------------------------------------------------------------


def _mat(a, b, c, d, dtype) -> torch.Tensor:
    a, b, c, d = torch.broadcast_tensors(*(torch.as_tensor(v).to(dtype) for v in (a, b, c, d)))
    return torch.stack([torch.stack([a, b], -1), torch.stack([c, d], -1)], -2)


def _phase(angle: torch.Tensor, dtype) -> torch.Tensor:
    return torch.polar(torch.ones_like(angle), angle).to(dtype)


def _u(theta, phi, lam, dtype) -> torch.Tensor:
    c, s = torch.cos(theta / 2), torch.sin(theta / 2)
    return _mat(c, -_phase(lam, dtype) * s, _phase(phi, dtype) * s,
                _phase(phi + lam, dtype) * c, dtype)


def one_qubit_matrix(name: str, cols: list[torch.Tensor], dtype) -> torch.Tensor:
    """(R or 1, 2, 2) matrices of a single-qubit gate for angle columns ``cols`` (each (R,))."""
    if name in FIXED_1Q:
        return torch.as_tensor(FIXED_1Q[name]).to(dtype)[None]
    theta = cols[0] if cols else None
    if name == "rx":
        c, s = torch.cos(theta / 2), torch.sin(theta / 2)
        return _mat(c, -1j * s, -1j * s, c, dtype)
    if name == "ry":
        c, s = torch.cos(theta / 2), torch.sin(theta / 2)
        return _mat(c, -s, s, c, dtype)
    if name == "rz":
        e = _phase(-theta / 2, dtype)
        return _mat(e, 0, 0, e.conj(), dtype)
    if name in ("p", "u1"):
        return _mat(1, 0, 0, _phase(theta, dtype), dtype)
    if name in ("u", "u3"):
        return _u(*cols, dtype)
    if name == "u2":
        return _u(torch.full_like(cols[0], math.pi / 2), *cols, dtype)
    raise UnsupportedOperationError(f"no single-qubit matrix for gate {name!r}")


def two_qubit_matrix(gate: PairGate, cols: list[torch.Tensor], dtype) -> torch.Tensor:
    """(R or 1, 4, 4) site-ordered matrix (rows (o_lo, i_lo), columns (o_hi, i_hi))."""
    if gate.constant is not None:
        return torch.as_tensor(gate.constant).to(dtype)[None]
    theta = cols[0]
    one = torch.ones_like(theta).to(dtype)
    if gate.name == "rzz":
        e = _phase(-theta / 2, dtype)
        diagonal = [e, e.conj(), e.conj(), e]
    elif gate.name in ("cp", "cu1"):
        diagonal = [one, one, one, _phase(theta, dtype)]
    elif gate.name == "crz":  # control is bit 0 (qubits[0])
        e = _phase(-theta / 2, dtype)
        diagonal = [one, e, one, e.conj()]
    else:
        raise UnsupportedOperationError(f"no two-qubit matrix for gate {gate.name!r}")
    return _site_ordered(torch.diag_embed(torch.stack(diagonal, -1)), gate.qubits)


# ---------------------------------------------------------------------------------------------
# Simulation
# ---------------------------------------------------------------------------------------------


def _columns(angles: torch.Tensor, index: tuple[int, ...]) -> list[torch.Tensor]:
    return [angles[:, g] for g in index]


def simulate_chain(circuit: ChainCircuit, angles: torch.Tensor, dtype) -> list[torch.Tensor]:
    """Site tensors ``(R, left bond, 2, right bond)`` of the final state for angle rows (R, G)."""
    rows = angles.shape[0]
    zero = torch.zeros(rows, 1, 2, 1, dtype=dtype)
    zero[:, 0, 0, 0] = 1.0
    sites = [zero] * circuit.num_qubits
    for step in circuit.steps:
        if isinstance(step, SiteGates):
            matrix = None
            for gate in step.gates:
                m = one_qubit_matrix(gate.name, _columns(angles, gate.angle_index), dtype)
                matrix = m if matrix is None else m @ matrix
            sites[step.qubit] = torch.einsum("rij,rljm->rlim", matrix.expand(rows, 2, 2),
                                             sites[step.qubit])
        else:
            _apply_pair(sites, step, angles, dtype)
    return sites


def _apply_pair(sites: list[torch.Tensor], gate: PairGate, angles: torch.Tensor, dtype) -> None:
    rank = gate.rank
    basis = torch.as_tensor(gate.basis).to(dtype)  # (r, 2, 2) on the lower site
    matrix = two_qubit_matrix(gate, _columns(angles, gate.angle_index), dtype)
    # B_s = sum_{o,i} conj(basis_s[o, i]) G[(o, i), :]  -> (R or 1, r, 2, 2) on the upper site
    upper = torch.einsum("sa,rab->rsb", basis.reshape(rank, 4).conj(), matrix)
    upper = upper.reshape(matrix.shape[0], rank, 2, 2)
    lo, hi = gate.lo, gate.hi
    left = sites[lo]
    rows, chi_l, _, chi_m = left.shape
    sites[lo] = torch.einsum("sij,rljm->rlims", basis, left).reshape(rows, chi_l, 2, chi_m * rank)
    if hi - lo > 1:
        eye = torch.eye(rank, dtype=dtype)
        for q in range(lo + 1, hi):  # carry the Schmidt index through untouched sites
            a = sites[q]
            sites[q] = torch.einsum("rajb,st->rasjbt", a, eye).reshape(
                rows, a.shape[1] * rank, 2, a.shape[3] * rank)
    right = sites[hi]
    chi_m, chi_r = right.shape[1], right.shape[3]
    upper = upper.expand(rows, rank, 2, 2)
    sites[hi] = torch.einsum("rsij,rmjn->rmsin", upper, right).reshape(rows, chi_m * rank, 2,
                                                                       chi_r)


# ---------------------------------------------------------------------------------------------
# Observables
# ---------------------------------------------------------------------------------------------

_PAULI = {
    "X": np.array([[0, 1], [1, 0]], dtype=complex),
    "Y": np.array([[0, -1j], [1j, 0]], dtype=complex),
    "Z": np.array([[1, 0], [0, -1]], dtype=complex),
    "I": np.eye(2, dtype=complex),
}


@dataclass
class ChainObservables:
    """Observables as coefficients over their distinct Pauli strings: ``O = coeffs @ terms``."""

    labels: list[str]  # distinct Pauli labels (qiskit order: qubit q is label[-1 - q])
    coeffs: np.ndarray  # (O, T) complex

    @classmethod
    def from_terms(cls, observables: list[list[tuple[str, complex]]]) -> ChainObservables:
        index: dict[str, int] = {}
        for terms in observables:
            for label, _ in terms:
                index.setdefault(label, len(index))
        coeffs = np.zeros((len(observables), len(index)), dtype=complex)
        for o, terms in enumerate(observables):
            for label, coeff in terms:
                coeffs[o, index[label]] += coeff
        return cls(list(index), coeffs)


class _SiteOps:
    """The terms' single-site Paulis at one site, in the cheapest form to apply."""

    def __init__(self, labels: list[str], site: int, dtype):
        chars = [label[-1 - site] for label in labels]
        self.identity = all(c == "I" for c in chars)
        self.diagonal = None
        self.dense = None
        if self.identity:
            return
        if all(c in "IZ" for c in chars):  # Z readouts: a sign per basis state
            signs = [[1.0, -1.0] if c == "Z" else [1.0, 1.0] for c in chars]
            self.diagonal = torch.tensor(signs, dtype=dtype).reshape(len(chars), 1, 1, 2, 1)
        else:
            self.dense = torch.as_tensor(np.stack([_PAULI[c] for c in chars])).to(dtype)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """x (T, R, bond, 2, bond): the term's Pauli on the physical index of term t."""
        if self.identity:
            return x
        if self.diagonal is not None:
            return x * self.diagonal
        return torch.einsum("tij,trxjb->trxib", self.dense, x)


def _left(env: torch.Tensor, site: torch.Tensor, ops: _SiteOps) -> torch.Tensor:
    """Left environments (T, R, bra, ket) through one site, each with its term's Pauli."""
    x = ops.apply(torch.einsum("trxy,ryjb->trxjb", env, site))
    return torch.einsum("rxia,trxib->trab", site.conj(), x)


def _right(env: torch.Tensor, site: torch.Tensor, ops: _SiteOps) -> torch.Tensor:
    """Right environments (T, R, bra, ket) through one site, each with its term's Pauli."""
    x = ops.apply(torch.einsum("rpjc,trbc->trpjb", site, env))
    return torch.einsum("raib,trpib->trap", site.conj(), x)


def _sweep(sites: list[torch.Tensor], labels: list[str], dtype, *, reverse: bool = False,
           keep: bool = True):
    """Environments of every term at every cut, sweeping from the left (or the right).

    Returns ``envs`` with ``envs[c]`` (T, R, bra, ket) covering sites ``< c`` (from the left) or
    ``>= c`` (from the right), c = 0..n; with ``keep=False`` only the last one. A term's environment equals the plain (Pauli-free) one
    until its first non-identity site, so only terms that have started are transferred with their
    Paulis; the others share the plain environment (about half the work for single-site readouts).
    """
    n, rows = len(sites), sites[0].shape[0]
    order = list(range(n - 1, -1, -1)) if reverse else list(range(n))
    step = _right if reverse else _left

    def start(label: str) -> int:  # position in ``order`` of the term's first Pauli
        active = [i for i, q in enumerate(order) if label[-1 - q] != "I"]
        return active[0] if active else n - 1

    starts = np.array([start(label) for label in labels])
    perm = np.argsort(starts, kind="stable")  # terms that start earlier come first
    sorted_labels = [labels[t] for t in perm]
    unperm = torch.as_tensor(np.argsort(perm))
    one = torch.ones(1, rows, 1, 1, dtype=dtype)
    plain, started = one, one[:0]
    envs = [one.expand(len(labels), -1, -1, -1)]
    for i, q in enumerate(order):
        count = int(np.sum(starts <= i))
        if count > started.shape[0]:
            new = plain.expand(count - started.shape[0], -1, -1, -1)
            started = torch.cat([started, new]) if started.shape[0] else new
        started = step(started, sites[q],
                       _SiteOps(sorted_labels[:count], q, dtype))
        if count < len(labels):  # some terms have not started: they still need the plain one
            plain = step(plain, sites[q], _SiteOps(["I" * n], q, dtype))
        if keep or i == n - 1:
            full = started
            if count < len(labels):
                full = torch.cat([started, plain.expand(len(labels) - count, -1, -1, -1)])
            envs.append(full[unperm])
    return envs[::-1] if reverse else envs


def term_values(sites: list[torch.Tensor], labels: list[str], dtype) -> torch.Tensor:
    """(T, R) real <psi|P_t|psi> for the Pauli strings ``labels``."""
    return _sweep(sites, labels, dtype, keep=False)[-1][:, :, 0, 0].real


def readout_cotangents(sites: list[torch.Tensor], labels: list[str], dtype):
    """Values (T, R) and, per site, d<P_t>/d conj(site) as (T, R, left, 2, right) tensors.

    Written out instead of taken from autograd: with environments that carry each term's Pauli
    from both ends, every cotangent is one local contraction (reverse mode would redo the sweeps
    once per term).
    """
    left = _sweep(sites, labels, dtype)
    right = _sweep(sites, labels, dtype, reverse=True)
    cotangents = []
    for q, site in enumerate(sites):
        x = _SiteOps(labels, q, dtype).apply(torch.einsum("trap,rpjc->trajc", left[q], site))
        cotangents.append(torch.einsum("traic,trbc->traib", x, right[q + 1]))
    return left[-1][:, :, 0, 0].real, cotangents


def expectations(circuit: ChainCircuit, angles: torch.Tensor, observables: ChainObservables,
                 dtype) -> torch.Tensor:
    """(R, O) real expectation values."""
    sites = simulate_chain(circuit, angles, dtype)
    values = term_values(sites, observables.labels, dtype)  # (T, R)
    return values.T @ torch.as_tensor(observables.coeffs.real).to(values.dtype).T


def rows_per_chunk(circuit: ChainCircuit, max_elements: int = 1 << 25) -> int:
    """Rows simulated together: autograd keeps about one site tensor per step alive."""
    bonds = (1, *circuit.bonds, 1)
    per_row = sum(2 * bonds[q] * bonds[q + 1] for q in range(circuit.num_qubits))
    return max(1, max_elements // (per_row * max(1, len(circuit.steps))))


def torch_dtype(dtype) -> torch.dtype:
    return _TORCH_COMPLEX[np.dtype(dtype)]


def _real(dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if dtype == torch.complex64 else torch.float64


def expectation_table(circuit: ChainCircuit, angles: np.ndarray, observables: ChainObservables,
                      dtype=np.complex128) -> np.ndarray:
    cdtype = torch_dtype(dtype)
    with torch.no_grad():
        table = expectations(circuit, torch.as_tensor(angles, dtype=_real(cdtype)), observables,
                             cdtype)
    return table.double().numpy()


def chain_jacobian(circuit: ChainCircuit, angles: np.ndarray, observables: ChainObservables,
                   obs_index: np.ndarray, dtype=np.complex128) -> np.ndarray:
    """d<O_{obs_index[r, k]}>/d angle_g for every row r: shape (R, K, G), like ``adjoint_jacobian``.

    The readout's cotangents are written out (``readout_cotangents``); the K cotangents of every
    row then go back through the state preparation in one batched reverse pass.
    """
    cdtype = torch_dtype(dtype)
    rows, k_obs = obs_index.shape
    with torch.enable_grad():
        theta = torch.as_tensor(angles, dtype=_real(cdtype)).clone().requires_grad_(True)
        sites = simulate_chain(circuit, theta, cdtype)
        with torch.no_grad():
            _, per_term = readout_cotangents([s.detach() for s in sites], observables.labels,
                                             cdtype)
            # Real coefficients: Pauli strings are Hermitian, so <O> = sum_t Re(c_t) <P_t>.
            weights = torch.as_tensor(observables.coeffs.real[obs_index]).to(cdtype)  # (R, K, T)
            # torch's cotangent for a real loss L of complex z is 2 dL/d conj(z).
            cotangents = [2 * torch.einsum("rkt,traib->kraib", weights, g) for g in per_term]
        live = [q for q, s in enumerate(sites) if s.requires_grad]
        if not live:  # no gate depends on a parameter
            return np.zeros((rows, k_obs, angles.shape[1]))
        (grads,) = torch.autograd.grad([sites[q] for q in live], theta,
                                       [cotangents[q] for q in live], is_grads_batched=True,
                                       allow_unused=True)
    if grads is None:
        return np.zeros((rows, k_obs, angles.shape[1]))
    return grads.permute(1, 0, 2).double().numpy()
