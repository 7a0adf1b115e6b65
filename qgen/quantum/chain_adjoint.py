"""Reverse mode on the chain: the exact Jacobian and VJP of ``chain`` programs.

Forward with a tape (``chain_simulate``), cotangents of the readout in closed form
(``chain_readout``), then one pass back through the steps (``reverse_pass``) carrying one cotangent
per observable (``chain_jacobian``) or one weighted cotangent per row (``chain_vjp``) for every row
at once. Written out rather than left to autograd: no graph, and every matrix derivative is the
gate IR's closed form.
"""

from __future__ import annotations

import numpy as np
import torch

from qgen.quantum import chain_simulate
from qgen.quantum.chain import ChainCircuit, SiteGates, upper_factors
from qgen.quantum.chain_readout import (
    ChainObservables,
    as_index,
    readout_cotangents,
    weighted_readout_cotangents,
)
from qgen.quantum.chain_simulate import RecentRuns, TapeRecord, torch_dtype


def reverse_pass(tape: list[TapeRecord], cotangents: list[torch.Tensor], grads: np.ndarray) -> None:
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
                d_upper = np.broadcast_to(upper_factors(step, d), (rows, rank, 2, 2))
                grads[:, :, a] += 2 * np.einsum("krsij,rsij->rk", upper_cot.conj(), d_upper).real
        cotangents[hi] = torch.einsum("rsij,krmsin->krmjn", upper.conj(), out)


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
            index = as_index(picks)
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
    run = chain_simulate.run_chain(circuit, angles, cdtype)
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
        run = chain_simulate.run_chain(circuit, angles, cdtype)
    with torch.no_grad():
        # Pauli strings are Hermitian: <O> = sum_t Re(c_t) <P_t> (see _observable_cotangents).
        term_weights = torch.as_tensor(weights @ observables.coeffs.real).to(cdtype)  # (R, T)
        cotangents = weighted_readout_cotangents(run.sites, observables.labels, cdtype,
                                                 term_weights, run)
        reverse_pass(run.tape, cotangents, grads)
    return grads[:, 0]
