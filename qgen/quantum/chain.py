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

The contractions run in torch (batched small matrix products); the gate matrices and their
derivatives are ``gate_ir``'s closed forms (shared with the statevector kernels). The exact Jacobian is reverse mode written
out: readout cotangents from environments, then one pass back through the steps carrying one
cotangent per observable for every row at once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch
from qiskit.circuit import QuantumCircuit

from qgen.quantum.gate_ir import (
    DIAGONAL_GATES,
    one_qubit_derivatives,
    one_qubit_matrix,
    LAYER_GATES,
    AngleBuilder,
    AngleProgram,
    GateRef,
    gate_instructions,
)

# Gates of the gate IR that are local enough for a chain (at most two qubits).
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


def _pair_matrices(gate: PairGate, angles: np.ndarray):
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


def _upper_factors(gate: PairGate, matrix: np.ndarray) -> np.ndarray:
    """B_s = sum_{o,i} conj(basis_s[o, i]) G[(o, i), :] as (R or 1, r, 2, 2)."""
    basis = gate.basis.reshape(gate.rank, 4).conj()
    return np.einsum("sa,rab->rsb", basis, matrix).reshape(matrix.shape[0], gate.rank, 2, 2)


# ---------------------------------------------------------------------------------------------
# Simulation (forward) and its reverse pass
# ---------------------------------------------------------------------------------------------


class _SiteTable:
    """The fused matrices of every single-site step of one simulation, and (on the reverse pass's
    first request) their derivatives, each computed for all steps together
    (``site_matrices_batched``)."""

    def __init__(self, circuit: ChainCircuit, angles: np.ndarray) -> None:
        self._steps = [st for st in circuit.steps if isinstance(st, SiteGates)]
        self._angles = angles
        self.matrices = [m for m, _ in site_matrices_batched(self._steps, angles, False)]
        self._derivatives: list | None = None

    def derivatives(self, position: int) -> list:
        if self._derivatives is None:
            self._derivatives = [d for _, d in site_matrices_batched(self._steps, self._angles, True)]
        return self._derivatives[position]


@dataclass(eq=False)
class _Record:
    """What the reverse pass needs from one forward step."""

    step: SiteGates | PairGate
    inputs: list[torch.Tensor]  # site tensors of sites lo..hi (or the one site) before the step
    matrix: torch.Tensor  # fused 2x2 (R or 1, 2, 2) or upper factors (R or 1, r, 2, 2)
    angles: np.ndarray  # the rows' angles, for the derivatives
    site_table: _SiteTable | None = None  # single-site steps: where their derivatives come from
    position: int = 0  # ... at this position

    def derivatives(self) -> list:
        """(angle index, numpy derivative of the fused matrix / of the full 4x4) per angle.

        Computed when the reverse pass asks, not during the forward: a forward that is kept for a
        later VJP (``RecentRuns``) then costs no more than one that is not.
        """
        if self.site_table is not None:
            return self.site_table.derivatives(self.position)
        return _pair_matrices(self.step, self.angles)[1]


@dataclass(eq=False)
class ChainRun:
    """One simulation of a chain: the final site tensors and the tape of its steps."""

    circuit: ChainCircuit
    angles: np.ndarray
    sites: list[torch.Tensor]
    tape: list[_Record]
    _plain: tuple | None = None

    def plain_environments(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Pauli-free (left, right) environments per cut, computed once per run: the forward's
        readout and the VJP's cotangents both need them."""
        if self._plain is None:
            self._plain = plain_environments(self.sites)
        return self._plain


def run_chain(circuit: ChainCircuit, angles: np.ndarray, dtype) -> ChainRun:
    """Simulate with a tape (torch dtype ``dtype``), no autograd graph."""
    tape: list[_Record] = []
    with torch.no_grad():
        sites = simulate_chain(circuit, angles, dtype, tape)
    return ChainRun(circuit, angles, sites, tape)


class RecentRuns:
    """The last few chain simulations, so that a VJP right after its forward does not simulate again.

    Why: in training, TorchConnector's backward asks for the VJP at exactly the parameter rows
    its forward has just run, and the simulation is about a third of the layer's time (16 qubits,
    linear, batch 64). A run is reused only for the same compiled circuit object, dtype and
    bit-identical angles, so a hit gives exactly what simulating again would. Thread-safe: the
    estimator's jobs run in a worker thread, the gradient in the caller's.
    """

    def __init__(self, size: int = 2) -> None:
        self._size = size
        self._runs: OrderedDict[tuple, ChainRun] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _key(circuit: ChainCircuit, angles: np.ndarray, dtype) -> tuple:
        return id(circuit), str(dtype), angles.shape, np.ascontiguousarray(angles).tobytes()

    def get(self, circuit: ChainCircuit, angles: np.ndarray, dtype) -> ChainRun | None:
        with self._lock:
            run = self._runs.get(self._key(circuit, angles, dtype))
        return run if run is not None and run.circuit is circuit else None

    def put(self, run: ChainRun, dtype) -> None:
        with self._lock:
            self._runs[self._key(run.circuit, run.angles, dtype)] = run
            while len(self._runs) > self._size:
                self._runs.popitem(last=False)


def simulate_chain(circuit: ChainCircuit, angles: np.ndarray, dtype,
                   tape: list | None = None) -> list[torch.Tensor]:
    """Site tensors ``(R, left bond, 2, right bond)`` of the final state for angle rows (R, G).

    With ``tape`` (a list), appends one ``_Record`` per step for ``reverse_pass``.
    """
    rows = angles.shape[0]
    zero = torch.zeros(rows, 1, 2, 1, dtype=dtype)
    zero[:, 0, 0, 0] = 1.0
    sites = [zero] * circuit.num_qubits
    table = _SiteTable(circuit, angles)
    position = 0
    for step in circuit.steps:
        if isinstance(step, SiteGates):
            m = torch.as_tensor(table.matrices[position]).to(dtype)
            q = step.qubit
            if tape is not None:
                tape.append(_Record(step, [sites[q]], m, angles, table, position))
            position += 1
            sites[q] = torch.einsum("rij,rljm->rlim", m.expand(rows, 2, 2), sites[q])
        else:
            matrix, _ = _pair_matrices(step, angles)
            upper = torch.as_tensor(_upper_factors(step, matrix)).to(dtype)
            if tape is not None:
                tape.append(_Record(step, sites[step.lo:step.hi + 1], upper, angles))
            _apply_pair(sites, step, upper, dtype)
    return sites


def _apply_pair(sites: list[torch.Tensor], gate: PairGate, upper: torch.Tensor, dtype) -> None:
    rank = gate.rank
    basis = torch.as_tensor(gate.basis).to(dtype)  # (r, 2, 2) on the lower site
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
    sites[hi] = torch.einsum("rsij,rmjn->rmsin", upper.expand(rows, rank, 2, 2), right).reshape(
        rows, chi_m * rank, 2, chi_r)


def reverse_pass(tape: list[_Record], cotangents: list[torch.Tensor], grads: np.ndarray) -> None:
    """Back-propagate per-site cotangents ``d f / d conj(site)`` (each (K, R, left, 2, right)).

    Accumulates ``grads[r, k, g] += d f_k / d angle_g`` (real angles: 2 Re <cotangent, d site>).
    Written out rather than left to autograd: no graph, and every matrix derivative is the
    gate IR's closed form.
    """
    for record in reversed(tape):
        step = record.step
        if isinstance(step, SiteGates):
            q, (before,) = step.qubit, record.inputs
            out = cotangents[q]
            k_obs, rows = out.shape[:2]
            derivatives = record.derivatives()
            if derivatives:
                matrix_cot = torch.einsum("krlim,rljm->krij", out, before.conj()).numpy()
                for a, d in derivatives:
                    grads[:, :, a] += 2 * np.einsum("krij,rij->rk", matrix_cot.conj(),
                                                    np.broadcast_to(d, (rows, 2, 2))).real
            cotangents[q] = torch.einsum("rij,krlim->krljm",
                                         record.matrix.conj().expand(rows, 2, 2), out)
            continue
        lo, hi, rank = step.lo, step.hi, step.rank
        basis = torch.as_tensor(step.basis).to(cotangents[lo].dtype)
        out = cotangents[lo]
        k_obs, rows, chi_l, _, chi_ms = out.shape
        out = out.reshape(k_obs, rows, chi_l, 2, chi_ms // rank, rank)
        cotangents[lo] = torch.einsum("sij,krlims->krljm", basis.conj(), out)
        for q in range(lo + 1, hi):  # the carried Schmidt index: keep its diagonal
            out = cotangents[q]
            a, b = out.shape[2] // rank, out.shape[4] // rank
            out = out.reshape(k_obs, rows, a, rank, 2, b, rank)
            cotangents[q] = torch.einsum("krasibs->kraib", out)
        out = cotangents[hi]
        chi_m, chi_r = out.shape[2] // rank, out.shape[4]
        out = out.reshape(k_obs, rows, chi_m, rank, 2, chi_r)
        upper = record.matrix.expand(rows, rank, 2, 2)
        derivatives = record.derivatives()
        if derivatives:
            before = record.inputs[-1]
            upper_cot = torch.einsum("krmsin,rmjn->krsij", out, before.conj()).numpy()
            for a, d in derivatives:
                d_upper = np.broadcast_to(_upper_factors(step, d), (rows, rank, 2, 2))
                grads[:, :, a] += 2 * np.einsum("krsij,rsij->rk", upper_cot.conj(), d_upper).real
        cotangents[hi] = torch.einsum("rsij,krmsin->krmjn", upper.conj(), out)


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
    """The terms' single-site Paulis at one site, applied only to the terms that have one."""

    def __init__(self, labels: list[str], site: int, dtype):
        chars = [label[-1 - site] for label in labels]
        self.active = [t for t, c in enumerate(chars) if c != "I"]
        self.z_only = all(chars[t] == "Z" for t in self.active)
        self.dense = torch.as_tensor(np.stack([_PAULI[chars[t]] for t in self.active])
                                     if self.active else np.zeros((0, 2, 2))).to(dtype)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """x (T, R, bond, 2, bond), freshly computed: the term's Pauli on its physical index."""
        if not self.active:
            return x
        if self.z_only:  # Z: negate the |1> slice of those terms, in place
            x[_index(self.active), :, :, 1] *= -1
            return x
        rows = _index(self.active)
        x[rows] = torch.einsum("tij,trxjb->trxib", self.dense, x[rows])
        return x


def _index(items) -> slice | torch.Tensor:
    """A slice when ``items`` are consecutive (a view, no gather), else an index tensor."""
    items = np.asarray(items)
    if items.size and np.all(np.diff(items) == 1):
        return slice(int(items[0]), int(items[-1]) + 1)
    return torch.as_tensor(items, dtype=torch.long)


def _left(env: torch.Tensor, site: torch.Tensor, ops: _SiteOps) -> torch.Tensor:
    """Left environments (T, R, bra, ket) through one site, each with its term's Pauli."""
    x = ops.apply(torch.einsum("trxy,ryjb->trxjb", env, site))
    return torch.einsum("rxia,trxib->trab", site.conj(), x)


def _right(env: torch.Tensor, site: torch.Tensor, ops: _SiteOps) -> torch.Tensor:
    """Right environments (T, R, bra, ket) through one site, each with its term's Pauli."""
    x = ops.apply(torch.einsum("rpjc,trbc->trpjb", site, env))
    return torch.einsum("raib,trpib->trap", site.conj(), x)


@dataclass
class _Environments:
    """Per cut c: the plain (Pauli-free) environment and those of the terms already started.

    From the left, cut c covers sites < c; from the right, sites >= c. Term t is started at cut c
    when its first Pauli (from that side) lies inside; its environment is then
    ``started[c][position[t]]``, otherwise it equals ``plain[c]``.
    """

    plain: list[torch.Tensor]  # (1, R, bra, ket)
    started: list[torch.Tensor]  # (count_c, R, bra, ket)
    counts: list[int]
    position: np.ndarray  # (T,) row of each term in ``started``

    def is_started(self, cut: int) -> np.ndarray:
        return self.position < self.counts[cut]

    def full(self, cut: int) -> torch.Tensor:
        """(T, R, bra, ket) in term order."""
        t = len(self.position)
        rows = self.started[cut]
        if self.counts[cut] < t:
            rows = torch.cat([rows, self.plain[cut].expand(t - self.counts[cut], -1, -1, -1)])
        return rows[torch.as_tensor(self.position)]


def _sweep(sites: list[torch.Tensor], labels: list[str], dtype, *,
           reverse: bool = False) -> _Environments:
    """Environments of every term at every cut, sweeping from the left (or the right).

    A term's environment equals the plain one until its first Pauli, so only started terms are
    transferred with their Paulis (about half the work for single-site readouts).
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
    identity = _SiteOps(["I" * n], 0, dtype)
    one = torch.ones(1, rows, 1, 1, dtype=dtype)
    plain, started = [one], [one[:0]]
    counts = [0]
    for i, q in enumerate(order):
        count = int(np.sum(starts <= i))
        env = started[-1]
        if count > env.shape[0]:
            new = plain[-1].expand(count - env.shape[0], -1, -1, -1)
            env = torch.cat([env, new]) if env.shape[0] else new
        started.append(step(env, sites[q], _SiteOps(sorted_labels[:count], q, dtype)))
        # terms not started yet still need the plain environment of the next cut
        plain.append(step(plain[-1], sites[q], identity) if count < len(labels) else None)
        counts.append(count)
    if reverse:  # index by cut: the right environment of cut c covers sites >= c
        plain, started, counts = plain[::-1], started[::-1], counts[::-1]
    return _Environments(plain, started, counts, np.argsort(perm))


def plain_environments(sites: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Pauli-free environments (R, bra, ket) per cut: ``left[c]`` covers sites < c, ``right[c]``
    sites >= c (c = 0..n)."""
    rows, dtype = sites[0].shape[0], sites[0].dtype
    one = torch.ones(rows, 1, 1, dtype=dtype)
    left, right = [one], [one]
    with torch.no_grad():
        for site in sites:
            x = torch.matmul(left[-1], site.flatten(2))  # (R, bra, 2 * right bond)
            left.append(torch.matmul(site.conj().flatten(1, 2).transpose(1, 2),
                                     x.reshape(rows, -1, site.shape[3])))
        for site in reversed(sites):
            x = torch.matmul(site.flatten(1, 2), right[-1].transpose(1, 2))  # (R, left * 2, bra)
            right.append(torch.matmul(site.conj().flatten(2),
                                      x.reshape(rows, site.shape[1], -1).transpose(1, 2)))
    return left, right[::-1]


def _local_terms(labels: list[str]) -> list[tuple[int, str] | None] | None:
    """Per term, (site, Pauli letter) of its one non-identity Pauli, or None for the identity;
    None overall when some term acts on more than one site (then the sweeps are needed)."""
    found = []
    for label in labels:
        active = [(len(label) - 1 - i, c) for i, c in enumerate(label) if c != "I"]
        if len(active) > 1:
            return None
        found.append(active[0] if active else None)
    return found


def _norm_cotangent(lenv: torch.Tensor, site: torch.Tensor, renv: torch.Tensor) -> torch.Tensor:
    """lenv (R, a, p) . site (R, p, 2, c) . renv (R, b, c) -> (R, a, 2, b) as two matmuls."""
    rows, _, _, c = site.shape
    x = torch.matmul(lenv, site.flatten(2)).reshape(rows, -1, c)  # (R, a * 2, c)
    return torch.matmul(x, renv.transpose(1, 2)).reshape(rows, lenv.shape[1], 2, renv.shape[1])


def _local_values(sites, lefts, rights, local: list, dtype) -> torch.Tensor:
    """(T, R) values of single-site terms from each site's reduced density matrix."""
    rows = sites[0].shape[0]
    values = torch.empty(len(local), rows, dtype=torch.float64)
    rho: dict[int, torch.Tensor] = {}
    for t, term in enumerate(local):
        if term is None:
            values[t] = lefts[-1][:, 0, 0].real
            continue
        q, letter = term
        if q not in rho:  # rho[r, i, j] = sum_ab conj(site[r, a, i, b]) (L site R)[r, a, j, b];
            # the term is then sum_ij P[i, j] rho[r, i, j]
            site = sites[q]
            x = _norm_cotangent(lefts[q], site, rights[q + 1])
            rho[q] = torch.einsum("raib,rajb->rij", site.conj(), x)
        pauli = torch.as_tensor(_PAULI[letter]).to(dtype)
        values[t] = torch.einsum("rij,ij->r", rho[q], pauli).real
    return values


def term_values(sites: list[torch.Tensor], labels: list[str], dtype,
                run: ChainRun | None = None) -> torch.Tensor:
    """(T, R) real <psi|P_t|psi> for the Pauli strings ``labels``.

    Single-site terms (the bottleneck's Z readouts) are read from each site's reduced density
    matrix between the plain environments (of ``run`` when given, kept there for the VJP):
    two sweeps in all, instead of one environment per term carried to the chain's end.
    """
    local = _local_terms(labels)
    if local is not None:
        lefts, rights = run.plain_environments() if run is not None else plain_environments(sites)
        return _local_values(sites, lefts, rights, local, dtype)
    return _sweep(sites, labels, dtype).full(len(sites))[:, :, 0, 0].real


def readout_cotangents(sites: list[torch.Tensor], labels: list[str], dtype):
    """Values (T, R) and, per site, d<P_t>/d conj(site) as (T, R, left, 2, right) tensors.

    Written out instead of taken from autograd: with environments that carry each term's Pauli
    from both ends, every cotangent is a local contraction (reverse mode would redo the sweeps
    once per term). The Pauli of a term acts on the physical index only, so it is applied last,
    and the bond contractions share the plain environment wherever a term has not started:
    one contraction per (term, site) for single-site readouts.
    """
    n = len(sites)
    left = _sweep(sites, labels, dtype)
    right = _sweep(sites, labels, dtype, reverse=True)
    cotangents = []
    for q, site in enumerate(sites):
        in_left, in_right = left.is_started(q), right.is_started(q + 1)
        lp, rp = left.plain[q], right.plain[q + 1]
        parts, order = [], []
        for mask in (in_left & ~in_right, ~in_left & ~in_right, ~in_left & in_right,
                     in_left & in_right):
            terms = np.nonzero(mask)[0]
            if not terms.size:
                continue
            if in_left[terms[0]]:
                lenv = left.started[q][_index(left.position[terms])]
                x = torch.einsum("trap,rpjc->trajc", lenv, site)
            else:
                x = torch.einsum("rap,rpjc->rajc", lp[0], site)[None]
            if in_right[terms[0]]:
                renv = right.started[q + 1][_index(right.position[terms])]
                x = torch.einsum("trajc,trbc->trajb", x.expand(len(terms), -1, -1, -1, -1), renv)
            else:
                x = torch.einsum("trajc,rbc->trajb", x, rp[0])
            parts.append(x.expand(len(terms), -1, -1, -1, -1))
            order.extend(terms)
        out = torch.cat(parts)  # single-site readouts come out in term order: no gather
        if order != list(range(len(labels))):
            out = out[torch.as_tensor(np.argsort(order))]
        cotangents.append(_SiteOps(labels, q, dtype).apply(out))
    return left.full(n)[:, :, 0, 0].real, cotangents


def weighted_readout_cotangents(sites: list[torch.Tensor], labels: list[str], dtype,
                                term_weights: torch.Tensor,
                                run: ChainRun | None = None) -> list[torch.Tensor]:
    """Per site, ``sum_t term_weights[r, t] d<P_t>/d conj(site)`` as (1, R, left, 2, right).

    What ``chain_vjp`` needs, without per-term environments where they are not needed: the
    sweeps (``_WeightedSweep``) carry, besides the plain environment, one weighted environment of
    all terms already finished (an MPO of bond 2 for single-site readouts), and per-term
    environments only for terms started but not finished. A cotangent is then the finished
    sums of both sides against the plain environments, a weighted 2x2 Pauli sum for the terms on
    the site alone, and one contraction per term that spans the site.
    """
    local = _local_terms(labels)
    if local is not None:
        lefts, rights = run.plain_environments() if run is not None else plain_environments(sites)
        return _local_weighted_cotangents(sites, lefts, rights, local, term_weights, dtype)
    n = len(sites)
    left = _WeightedSweep(sites, labels, term_weights, dtype, range(n), reverse=False)
    right = _WeightedSweep(sites, labels, term_weights, dtype, range(n - 1, -1, -1), reverse=True)
    cotangents = []
    for q, site in enumerate(sites):
        lp, rp = left.plain[q], right.plain[q + 1]
        x = _contract(left.done[q], site, rp) + _contract(lp, site, right.done[q + 1])
        local = left.local_operator(q)
        if local is not None:
            x = x + _contract(lp, torch.einsum("rij,rajb->raib", local, site), rp)
        for t in left.spanning(q):
            lenv = left.active[q].get(t, lp)
            renv = right.active[q + 1].get(t, rp)
            x = x + term_weights[:, t, None, None, None] * _contract(
                lenv, _apply_pauli(labels[t][-1 - q], site.clone(), dtype), renv)
        cotangents.append(x[None])
    return cotangents


def _local_weighted_cotangents(sites, lefts, rights, local: list, term_weights: torch.Tensor,
                               dtype) -> list[torch.Tensor]:
    """``weighted_readout_cotangents`` for single-site terms, from the plain environments.

    With W_q = sum_{t on q} w_t P_t, the weighted readout is an MPO of bond 2, and
    d/d conj(site_q) = D_q site_q R_{q+1} + L_q (W_q site_q) R_{q+1} + L_q site_q E_{q+1}, where
    D (E) are the environments of the terms finished on the left (right). One sweep from the
    right builds E, one from the left builds D and the cotangents: a handful of batched matrix
    products per site (the per-term sweeps cost ~3x as many small contractions).
    """
    n, rows = len(sites), sites[0].shape[0]
    weights = term_weights
    ops: list[torch.Tensor | None] = [None] * n
    identity = torch.zeros(rows, dtype=dtype)
    for t, term in enumerate(local):
        if term is None:
            identity = identity + weights[:, t]
            continue
        q, letter = term
        w_p = weights[:, t, None, None] * torch.as_tensor(_PAULI[letter]).to(dtype)
        ops[q] = w_p if ops[q] is None else ops[q] + w_p

    def with_op(q: int, x: torch.Tensor) -> torch.Tensor:  # x (R, a, 2, c): W_q on the physical index
        return torch.matmul(ops[q][:, None], x)

    done_right = [torch.zeros(rows, 1, 1, dtype=dtype)] * (n + 1)  # E_c: finished terms at sites >= c
    for q in range(n - 1, 0, -1):
        site = sites[q]
        a_left, _, c = site.shape[1:]
        x = torch.matmul(site.flatten(1, 2), torch.stack([rights[q + 1], done_right[q + 1]]
                                                           ).transpose(2, 3))  # (2, R, a*2, b)
        x = x.reshape(2, rows, a_left, 2, -1)
        y = x[1] + with_op(q, x[0]) if ops[q] is not None else x[1]
        done_right[q] = torch.matmul(site.conj().flatten(2),
                                     y.reshape(rows, a_left, -1).transpose(1, 2))
    cotangents = []
    done_left = identity[:, None, None] * lefts[0]  # D_0: identity terms count as finished
    for q, site in enumerate(sites):
        c = site.shape[3]
        x = torch.matmul(torch.stack([lefts[q], done_left]), site.flatten(2))  # (2, R, a, 2*c)
        x = x.reshape(2, rows, -1, 2, c)
        plain_x, y = x[0], x[1]
        if ops[q] is not None:
            y = y + with_op(q, plain_x)
        a = y.shape[1]
        cot = (torch.matmul(y.reshape(rows, a * 2, c), rights[q + 1].transpose(1, 2))
               + torch.matmul(plain_x.reshape(rows, a * 2, c), done_right[q + 1].transpose(1, 2)))
        cotangents.append(cot.reshape(1, rows, a, 2, -1))
        if q + 1 < n:
            done_left = torch.matmul(site.conj().flatten(1, 2).transpose(1, 2),
                                     y.reshape(rows, -1, c))
    return cotangents


def _contract(lenv: torch.Tensor, site: torch.Tensor, renv: torch.Tensor) -> torch.Tensor:
    """lenv (R, a, p) . site (R, p, 2, c) . renv (R, b, c) -> (R, a, 2, b)."""
    return torch.einsum("rajc,rbc->rajb", torch.einsum("rap,rpjc->rajc", lenv, site), renv)


class _WeightedSweep:
    """Environments from one side (``order``: sites left to right, or right to left), per cut.

    ``plain[c]`` (R, bra, ket) has no Pauli; ``done[c]`` is ``sum_t w_t env_t`` over the terms
    whose Paulis all lie inside the cut; ``active[c]`` maps each term started but not finished
    to its own environment. Cut c covers sites < c from the left and sites >= c from the right.
    """

    def __init__(self, sites, labels, weights, dtype, order, *, reverse: bool):
        order = list(order)
        self.n, self.labels, self.weights, self.dtype = len(sites), labels, weights, dtype
        # explicit: with one site both orders are [0] (guessing from the order counted the
        # identity terms on both sides)
        self.reverse = reverse
        rank = {q: i for i, q in enumerate(order)}
        paulis = [[q for q in range(self.n) if label[-1 - q] != "I"] for label in labels]
        self.first = [min((rank[q] for q in p), default=None) for p in paulis]
        self.last = [max((rank[q] for q in p), default=None) for p in paulis]
        self.rank = rank
        rows = sites[0].shape[0]
        plain = torch.ones(rows, 1, 1, dtype=dtype)
        done = self._identity_terms(plain)
        active: dict[int, torch.Tensor] = {}
        states = [(plain, done, active)]
        for i, q in enumerate(order):
            site = sites[q]
            new_active, new_done = {}, self._step(done, site, None)
            local = self._local_operator(q, i)
            if local is not None:
                new_done = new_done + self._step(plain, site, local)
            for t, label in enumerate(labels):
                if (self.first[t] is None or not self.first[t] <= i <= self.last[t]
                        or self.first[t] == self.last[t]):
                    continue  # no Pauli yet, finished already, or a single-site term (local)
                env = active[t] if self.first[t] < i else plain
                env = self._step(env, site, label[-1 - q])
                if self.last[t] == i:
                    new_done = new_done + weights[:, t, None, None] * env
                else:
                    new_active[t] = env
            plain = self._step(plain, site, None)
            done, active = new_done, new_active
            states.append((plain, done, active))
        if self.reverse:
            states = states[::-1]
        self.plain = [p for p, _, _ in states]
        self.done = [d for _, d, _ in states]
        self.active = [a for _, _, a in states]

    def _identity_terms(self, plain: torch.Tensor) -> torch.Tensor:
        """Terms without any Pauli (the identity string) count as finished from the start."""
        ids = [t for t in range(len(self.labels)) if self.first[t] is None]
        if not ids or self.reverse:  # counted once, in the left sweep
            return torch.zeros_like(plain)
        return self.weights[:, ids].sum(dim=1)[:, None, None] * plain

    def _local_operator(self, q: int, i: int) -> torch.Tensor | None:
        """``sum_t w_t P_t`` (R, 2, 2) over the terms that live on site q alone."""
        terms = [t for t in range(len(self.labels)) if self.first[t] == i == self.last[t]]
        if not terms:
            return None
        paulis = torch.as_tensor(np.stack([_PAULI[self.labels[t][-1 - q]] for t in terms])).to(
            self.dtype)
        return torch.einsum("rt,tij->rij", self.weights[:, terms], paulis)

    def local_operator(self, q: int) -> torch.Tensor | None:
        return self._local_operator(q, self.rank[q])

    def spanning(self, q: int) -> list[int]:
        """Terms with Paulis at more than one site, at least one of them on each side or at q."""
        i = self.rank[q]
        return [t for t in range(len(self.labels))
                if self.first[t] is not None and self.first[t] <= i <= self.last[t]
                and self.first[t] != self.last[t]]

    def _step(self, env: torch.Tensor, site: torch.Tensor, op) -> torch.Tensor:
        """The environment one site further; ``op``: None, a Pauli letter or (R, 2, 2)."""
        if self.reverse:
            x = torch.einsum("rpjc,rbc->rpjb", site, env)
        else:
            x = torch.einsum("rxy,ryjb->rxjb", env, site)
        if isinstance(op, str):
            x = _apply_pauli(op, x, self.dtype)
        elif op is not None:
            x = torch.einsum("rij,rxjb->rxib", op, x)
        if self.reverse:
            return torch.einsum("raib,rpib->rap", site.conj(), x)
        return torch.einsum("rxia,rxib->rab", site.conj(), x)


def _apply_pauli(letter: str, x: torch.Tensor, dtype) -> torch.Tensor:
    """The Pauli ``letter`` on the physical index of x (R, left, 2, right), in place for Z."""
    if letter == "I":
        return x
    if letter == "Z":
        x[:, :, 1] *= -1
        return x
    return torch.einsum("ij,rajb->raib", torch.as_tensor(_PAULI[letter]).to(dtype), x)


def rows_per_chunk(circuit: ChainCircuit, max_elements: int = 1 << 25) -> int:
    """Rows simulated together: the Jacobian's tape keeps about one site tensor per step alive."""
    bonds = (1, *circuit.bonds, 1)
    per_row = sum(2 * bonds[q] * bonds[q + 1] for q in range(circuit.num_qubits))
    return max(1, max_elements // (per_row * max(1, len(circuit.steps))))


def torch_dtype(dtype) -> torch.dtype:
    return _TORCH_COMPLEX[np.dtype(dtype)]


def expectation_table(circuit: ChainCircuit, angles: np.ndarray, observables: ChainObservables,
                      dtype=np.complex128, recent: RecentRuns | None = None) -> np.ndarray:
    """(R, O) expectation values of every observable on every row.

    With ``recent``, the simulation (with its tape) is kept there for a following ``chain_vjp``.
    """
    cdtype = torch_dtype(dtype)
    run = run_chain(circuit, angles, cdtype)
    if recent is not None:
        recent.put(run, cdtype)
    with torch.no_grad():
        values = term_values(run.sites, observables.labels, cdtype, run).double().numpy()  # (T, R)
    return values.T @ observables.coeffs.real.T


def _observable_cotangents(observables: ChainObservables, obs_index: np.ndarray,
                           per_term: list[torch.Tensor], dtype) -> list[torch.Tensor]:
    """Per site, the (K, R, ...) cotangents of the observables each row asks for.

    Pauli strings are Hermitian, so <O> = sum_t Re(c_t) <P_t>. EstimatorQNN asks every row for
    the same observables, each a single Pauli string (Z_q): then this is a reindexing.
    """
    weights = observables.coeffs.real[obs_index]  # (R, K, T)
    if np.all(obs_index == obs_index[:1]):
        shared = weights[0]  # (K, T)
        picks = np.argmax(shared != 0, axis=1)
        if np.array_equal(shared, np.eye(shared.shape[1])[picks]):
            index = _index(picks)
            return [g[index] for g in per_term]
        w = torch.as_tensor(shared).to(dtype)
        return [torch.einsum("kt,traib->kraib", w, g) for g in per_term]
    w = torch.as_tensor(weights).to(dtype)
    return [torch.einsum("rkt,traib->kraib", w, g) for g in per_term]


def chain_jacobian(circuit: ChainCircuit, angles: np.ndarray, observables: ChainObservables,
                   obs_index: np.ndarray, dtype=np.complex128) -> np.ndarray:
    """d<O_{obs_index[r, k]}>/d angle_g for every row r: shape (R, K, G), like ``adjoint_jacobian``.

    Forward with a tape, cotangents of the readout in closed form (``readout_cotangents``), then
    one reverse pass that carries all K cotangents of every row at once.
    """
    cdtype = torch_dtype(dtype)
    rows, k_obs = obs_index.shape
    grads = np.zeros((rows, k_obs, angles.shape[1]))
    run = run_chain(circuit, angles, cdtype)
    with torch.no_grad():
        _, per_term = readout_cotangents(run.sites, observables.labels, cdtype)
        cotangents = _observable_cotangents(observables, obs_index, per_term, cdtype)
        reverse_pass(run.tape, cotangents, grads)
    return grads


def chain_vjp(circuit: ChainCircuit, angles: np.ndarray, observables: ChainObservables,
              weights: np.ndarray, dtype=np.complex128,
              recent: RecentRuns | None = None) -> np.ndarray:
    """Vector-Jacobian product ``sum_o weights[r, o] d<O_o>/d angle_g``: shape (R, G).

    Like ``chain_jacobian`` but the reverse pass carries one cotangent per row, the
    weights-combined readout cotangent, instead of one per observable. A run kept in ``recent``
    by the forward at the same angles is reused instead of simulated again.
    """
    cdtype = torch_dtype(dtype)
    grads = np.zeros((angles.shape[0], 1, angles.shape[1]))
    run = recent.get(circuit, angles, cdtype) if recent is not None else None
    if run is None:
        run = run_chain(circuit, angles, cdtype)
    with torch.no_grad():
        # Pauli strings are Hermitian: <O> = sum_t Re(c_t) <P_t> (see _observable_cotangents).
        term_weights = torch.as_tensor(weights @ observables.coeffs.real).to(cdtype)  # (R, T)
        cotangents = weighted_readout_cotangents(run.sites, observables.labels, cdtype,
                                                 term_weights, run)
        reverse_pass(run.tape, cotangents, grads)
    return grads[:, 0]
