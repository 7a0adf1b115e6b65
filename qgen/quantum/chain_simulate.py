"""The forward pass of a compiled chain (``chain.ChainCircuit``): site tensors, with a tape for the
reverse pass (``chain_adjoint``), and the expectation values of its observables.

The contractions run in torch (batched small matrix products); a simulation's readout is
``chain_readout``'s.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch

from qgen.quantum.chain import ChainCircuit, PairGate, SiteGates, pair_matrices, site_matrices_batched, upper_factors
from qgen.quantum.chain_readout import ChainObservables, plain_environments, term_values

_TORCH_COMPLEX = {np.dtype(np.complex64): torch.complex64, np.dtype(np.complex128): torch.complex128}


def torch_dtype(dtype) -> torch.dtype:
    return _TORCH_COMPLEX[np.dtype(dtype)]


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
class TapeRecord:
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
        return pair_matrices(self.step, self.angles)[1]


@dataclass(eq=False)
class ChainRun:
    """One simulation of a chain: the final site tensors and the tape of its steps."""

    circuit: ChainCircuit
    angles: np.ndarray
    sites: list[torch.Tensor]
    tape: list[TapeRecord]
    _plain: tuple | None = None

    def plain_environments(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Pauli-free (left, right) environments per cut, computed once per run: the forward's
        readout and the VJP's cotangents both need them."""
        if self._plain is None:
            self._plain = plain_environments(self.sites)
        return self._plain


def run_chain(circuit: ChainCircuit, angles: np.ndarray, dtype) -> ChainRun:
    """Simulate with a tape (torch dtype ``dtype``), no autograd graph."""
    tape: list[TapeRecord] = []
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

    With ``tape`` (a list), appends one ``TapeRecord`` per step for ``reverse_pass``.
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
                tape.append(TapeRecord(step, [sites[q]], m, angles, table, position))
            position += 1
            sites[q] = torch.einsum("rij,rljm->rlim", m.expand(rows, 2, 2), sites[q])
        else:
            matrix, _ = pair_matrices(step, angles)
            upper = torch.as_tensor(upper_factors(step, matrix)).to(dtype)
            if tape is not None:
                tape.append(TapeRecord(step, sites[step.lo:step.hi + 1], upper, angles))
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
