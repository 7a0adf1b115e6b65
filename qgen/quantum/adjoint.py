"""Reverse mode on the vectorized state vector: the adjoint Jacobian of ``statevector`` programs.

``adjoint_jacobian`` differentiates every readout of every row (K cotangents per row);
``adjoint_vjp`` contracts that Jacobian with per-row cotangents in one sweep (what backpropagation
needs). Gates are un-applied instead of stored, so memory stays at a few copies of the states.
"""

from __future__ import annotations

import numpy as np

from qgen.quantum.gate_ir import GateRef, gate_derivatives, gate_matrices
from qgen.quantum.statevector import (
    CompiledCircuit,
    CompiledObservable,
    DiagonalOp,
    LayerBlock,
    LayerOp,
    PermutationOp,
    ProductPrefix,
    apply_observable,
    apply_one_qubit,
    apply_op,
    broadcast_rows,
    kron_states,
    layer_blocks,
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
    * all gates of a layer commute, so their generators are evaluated at one point;
    * the product-state prefix is differentiated by contracting lambda with the other qubits'
      single-qubit states (divide and conquer, ~2 passes) instead of sweeping through it.
    """
    rows, k_obs = obs_index.shape
    grads = np.zeros((rows, k_obs, compiled.angles.num_angles))
    ops = compiled.ops
    used = np.unique(obs_index)
    real = real_dtype(dtype)
    vectors, psi = _forward(compiled, angles, dtype)

    remaining = len(ops)
    if all(observables[o].is_diagonal for o in used):
        diagonals = np.stack([o.diagonal for o in observables]).astype(real)  # (O, 2^n)
        psi, diagonals, remaining = _absorb_trailing(ops, angles, psi, diagonals)
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

    lam = _reverse_sweep(ops[:remaining], angles, psi, lam, grads, real)
    _prefix_gradients(compiled.prefix, angles, vectors, lam, grads)
    return grads


def adjoint_vjp(
    compiled: CompiledCircuit,
    angles: np.ndarray,
    observables: list[CompiledObservable],
    weights: np.ndarray,
    dtype=np.complex128,
) -> np.ndarray:
    """Vector-Jacobian product ``sum_o weights[r, o] d<O_o>/d angle_g``: shape (R, G).

    One reverse sweep per row with the cotangent-weighted observable ``sum_o w_ro O_o`` instead
    of one per observable (what ``adjoint_jacobian`` does): K times less work on lambda when a
    caller only needs the Jacobian contracted with an upstream gradient (backpropagation).
    For Z-diagonal observables the weighted observable is one real diagonal per row, and trailing
    permutations/diagonals are absorbed into it as in ``adjoint_jacobian``.
    """
    rows = angles.shape[0]
    grads = np.zeros((rows, 1, compiled.angles.num_angles))
    ops = compiled.ops
    real = real_dtype(dtype)
    used = [o for o in range(len(observables)) if np.any(weights[:, o])]
    vectors, psi = _forward(compiled, angles, dtype)

    remaining = len(ops)
    if all(observables[o].is_diagonal for o in used):
        diagonals = np.stack([observables[o].diagonal for o in used] or
                             [np.zeros(psi.shape[-1])]).astype(real)  # (U, 2^n)
        psi, diagonals, remaining = _absorb_trailing(ops, angles, psi, diagonals)
        row_weights = weights[:, used] if used else np.zeros((rows, 1))
        lam = (row_weights.astype(real) @ diagonals * psi)[:, None]  # (R, 1, 2^n)
    else:
        lam = np.zeros((rows, 1, psi.shape[-1]), dtype=dtype)
        for o in used:
            lam[:, 0] += weights[:, o, None] * apply_observable(observables[o], psi)

    lam = _reverse_sweep(ops[:remaining], angles, psi, lam, grads, real)
    _prefix_gradients(compiled.prefix, angles, vectors, lam, grads)
    return grads[:, 0]


def _forward(compiled: CompiledCircuit, angles: np.ndarray, dtype):
    """The prefix's single-qubit states (R, n, 2) and the final states (R, 2^n)."""
    vectors = prefix_vectors(compiled.prefix, angles).astype(dtype)
    psi = kron_states(vectors)
    for op in compiled.ops:
        psi = apply_op(psi, op, angles)
    return vectors, psi


def _absorb_trailing(ops: list, angles: np.ndarray, psi: np.ndarray, diagonals: np.ndarray):
    """Move trailing permutations/diagonals into Z-diagonal observables (O, 2^n).

    A permutation maps a diagonal observable to a diagonal one and a diagonal gate commutes with
    it, so those ops need no reverse sweep: returns (psi before them, moved diagonals, number of
    ops left to sweep).
    """
    remaining = len(ops)
    while remaining and isinstance(ops[remaining - 1], (PermutationOp, DiagonalOp)):
        op = ops[remaining - 1]
        if isinstance(op, PermutationOp):
            moved = np.empty_like(diagonals)
            moved[:, op.source] = diagonals
            diagonals = moved
        psi = apply_op(psi, op, angles, inverse=True)
        remaining -= 1
    return psi, diagonals, remaining


def _reverse_sweep(ops: list, angles: np.ndarray, psi: np.ndarray, lam: np.ndarray,
                   grads: np.ndarray, real) -> np.ndarray:
    """Un-apply ``ops`` (last first) to psi (R, 2^n) and the cotangents lam (R, K, 2^n),
    accumulating ``grads[r, k, g] += 2 Re <lam_k| d op / d angle_g |psi>``; returns lam."""
    for op in reversed(ops):
        if isinstance(op, DiagonalOp) and op.angle_index.size:
            patterns, _ = op.arrays(real)
            overlap = (lam.conj() * psi[:, None]).imag  # (R, K, 2^n)
            np.add.at(grads, (slice(None), slice(None), op.angle_index),
                      -2.0 * (overlap @ patterns.T))
        elif isinstance(op, LayerOp):
            _layer_gradients(op, angles, psi, lam, grads)
        lam = apply_op(lam, op, angles, inverse=True)
        psi = apply_op(psi, op, angles, inverse=True)
    return lam


def _layer_gradients(op: LayerOp, angles: np.ndarray, psi: np.ndarray, lam: np.ndarray,
                     grads: np.ndarray) -> None:
    """``grads[r, k, g] += 2 Re <lam_k| G_g |psi>`` for the generators ``G = dM M^dagger`` of a layer.

    The layer's gates commute, so every generator is evaluated at the state after the layer.
    Per block of neighbouring qubits (``statevector.layer_blocks``) the reduced cross matrix
    ``D[a, a'] = sum_rest conj(lam[.., a, ..]) psi[.., a', ..]`` is one batched matrix product;
    each generator's value is then a 2^w x 2^w contraction with it - no generator states.
    """
    num_qubits = psi.shape[-1].bit_length() - 1
    conj_lam = None
    for block in layer_blocks(op, num_qubits):
        targets = []
        for gate in block.gates:
            derivatives = gate_derivatives(gate, angles)
            if derivatives:
                matrix = gate_matrices(gate, angles).conj().transpose(0, 2, 1)
                targets.extend((g, gate.qubit, d @ matrix)
                               for g, d in zip(gate.angle_index, derivatives))
        if not targets:
            continue
        if conj_lam is None:
            conj_lam = lam.conj()
        cross = _block_cross(conj_lam, psi, block)  # (R, K, d, d)
        for g, qubit, generator in targets:
            j = qubit - block.start
            embedded = np.einsum("ab,rcd,ef->racebdf", np.eye(1 << (block.width - j - 1)),
                                 generator, np.eye(1 << j))
            embedded = embedded.reshape(generator.shape[0], *cross.shape[-2:])
            grads[:, :, g] += 2.0 * np.einsum("rab,rkab->rk", embedded, cross).real


def _block_cross(conj_lam: np.ndarray, psi: np.ndarray, block: LayerBlock) -> np.ndarray:
    """(R, K, d, d) ``sum over the other qubits of conj(lam)[.., a, ..] psi[.., a', ..]``."""
    rows, k_obs = conj_lam.shape[:2]
    d, low = 1 << block.width, 1 << block.start
    if low == 1:  # block at the bottom: one (d x N) @ (N x d) product per row and cotangent
        return np.matmul(conj_lam.reshape(rows, k_obs, -1, d).swapaxes(-1, -2),
                         psi.reshape(rows, 1, -1, d))
    pairs = np.matmul(conj_lam.reshape(rows, k_obs, -1, d, low),
                      psi.reshape(rows, 1, -1, d, low).swapaxes(-1, -2))
    return pairs.sum(axis=2)


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
