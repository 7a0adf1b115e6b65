"""Reverse mode on the vectorized state vector: the adjoint Jacobian of ``statevector`` programs.

``adjoint_jacobian`` differentiates every readout of every row (K cotangents per row). Gates are
un-applied instead of stored, so memory stays at a few copies of the states.
"""

from __future__ import annotations

import numpy as np

from qgen.quantum.gate_ir import GateRef, gate_derivatives, gate_matrices
from qgen.quantum.statevector import (
    CompiledCircuit,
    CompiledObservable,
    DiagonalOp,
    LayerOp,
    PermutationOp,
    ProductPrefix,
    apply_observable,
    apply_one_qubit,
    apply_op,
    broadcast_rows,
    kron_states,
    prefix_vectors,
    real_dtype,
)


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
    matrices = [broadcast_rows(gate_matrices(gate, angles), rows) for gate in chain]
    partial = [np.tile(np.array([1.0, 0.0], dtype=complex), (rows, 1))]
    for m in matrices:
        partial.append(np.einsum("rij,rj->ri", m, partial[-1]))
    for j, gate in enumerate(chain):
        for g, d in zip(gate.angle_index, gate_derivatives(gate, angles)):
            tangent = np.einsum("rij,rj->ri", broadcast_rows(d, rows), partial[j])
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
