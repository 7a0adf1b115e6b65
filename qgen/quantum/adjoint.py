"""Reverse mode on the vectorized state vector: the adjoint Jacobian of ``statevector`` programs.

``adjoint_jacobian`` differentiates every readout of every row (K cotangents per row);
``adjoint_vjp`` contracts that Jacobian with per-row cotangents in one sweep (what backpropagation
needs). Gates are un-applied instead of stored, so memory stays at a few copies of the states;
the VJP, which runs on cache-sized row chunks, also keeps each chunk's state before every layer
(cheaper to keep than to un-apply).
"""

from __future__ import annotations

import numpy as np

from qgen.quantum.gate_ir import GateRef, gate_derivatives, gate_matrices
from qgen.quantum.statevector import (
    CompiledCircuit,
    PreparedOp,
    PreparedOps,
    SplitPatterns,
    StateBuffers,
    cache_rows,
    cached_for,
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
    rows_per_chunk: int | None = None,
) -> np.ndarray:
    """Vector-Jacobian product ``sum_o weights[r, o] d<O_o>/d angle_g``: shape (R, G).

    One reverse sweep per row with the cotangent-weighted observable ``sum_o w_ro O_o`` instead
    of one per observable (what ``adjoint_jacobian`` does): K times less work on lambda when a
    caller only needs the Jacobian contracted with an upstream gradient (backpropagation).

    Built for memory traffic, which bounds it at 12+ qubits:

    * rows go through in cache-sized chunks (``statevector.cache_rows``), every kernel writing
      into a spare buffer of the chunk (``StateBuffers``), and ops whose angles all rows share
      are prepared once per call (``PreparedOps``);
    * for Z-diagonal observables the weighted observable is one real diagonal per row; trailing
      permutations/diagonals are folded into it once per call and never simulated;
    * layer gradients are 2x2 reduced cross matrices per qubit (``_qubit_crosses``): real dot
      products over the re/im floats, no generator states and no d x d block products.
    """
    rows, n = angles.shape[0], compiled.num_qubits
    grads = np.zeros((rows, compiled.angles.num_angles))
    if rows == 0:
        return grads
    used = [o for o in range(len(observables)) if np.any(weights[:, o])]
    diagonal = all(observables[o].is_diagonal for o in used)
    remaining, readout = len(compiled.ops), None
    if diagonal:
        remaining, readout = _absorbed_readout(compiled, [observables[o] for o in used])
    prepared = PreparedOps(compiled.ops[:remaining], angles, n, dtype)
    all_vectors = prefix_vectors(compiled.prefix, angles).astype(dtype)
    all_tangents = prefix_tangents(compiled.prefix, angles)
    per_chunk = rows_per_chunk or cache_rows(n)
    for start in range(0, rows, per_chunk):
        stop = min(start + per_chunk, rows)
        chunk_ops = prepared.chunk(start, stop)
        vectors = all_vectors[start:stop]
        psi = StateBuffers(kron_states(vectors))
        before_layer = {}  # op index -> state before that layer (the reverse sweep restores it)
        for i, op in enumerate(chunk_ops):
            if isinstance(op.op, LayerOp):
                before_layer[i] = psi.state.copy()
            psi.apply(op)
        if readout is not None:
            lam = _weighted_diagonal_times(psi.state, readout, weights[start:stop, used])
        else:
            lam = np.zeros_like(psi.state)
            for o in used:
                lam += weights[start:stop, o, None] * apply_observable(observables[o], psi.state)
        lam = StateBuffers(lam)
        chunk_grads = grads[start:stop]
        _vjp_sweep(chunk_ops, psi, lam, chunk_grads, before_layer)
        _prefix_gradients(compiled.prefix, angles[start:stop], vectors, lam.state[:, None],
                          chunk_grads[:, None],
                          [(q, g, tangent[start:stop]) for q, g, tangent in all_tangents])
    return grads


def _absorbed_readout(compiled: CompiledCircuit, observables: list[CompiledObservable]):
    """(ops left to simulate, SplitPatterns of the diagonals moved before the trailing ops).

    A permutation maps a diagonal observable to a diagonal one and a diagonal gate commutes with
    it, so trailing permutations/diagonals need neither a forward nor a reverse pass. Cached on
    the compiled circuit per observable list (the moved table is (O, 2^n)).
    """
    def build():
        diagonals = (np.stack([o.diagonal for o in observables]) if observables
                     else np.zeros((1, compiled.dim)))
        remaining = len(compiled.ops)
        while remaining and isinstance(compiled.ops[remaining - 1], (PermutationOp, DiagonalOp)):
            op = compiled.ops[remaining - 1]
            if isinstance(op, PermutationOp):
                moved = np.empty_like(diagonals)
                moved[:, op.source] = diagonals
                diagonals = moved
            remaining -= 1
        return remaining, SplitPatterns(diagonals, compiled.num_qubits)

    return cached_for(compiled.cache, 16, observables, build)


def _weighted_diagonal_times(psi: np.ndarray, readout: SplitPatterns,
                             weights: np.ndarray) -> np.ndarray:
    """``(weights @ diagonals) * psi`` row by row (a real diagonal per row)."""
    if weights.shape[1] == 0:
        return np.zeros_like(psi)
    # complex x real: numpy's mixed loop is 4x faster than a broadcast over the re/im floats
    return np.multiply(psi, readout.combine(weights).astype(real_dtype(psi.dtype), copy=False))


def _vjp_sweep(ops: list[PreparedOp], psi: StateBuffers, lam: StateBuffers,
               grads: np.ndarray, before_layer: dict[int, np.ndarray]) -> None:
    """Un-apply ``ops`` (last first) to psi and lam (R, 2^n), accumulating
    ``grads[r, g] += 2 Re <lam| d op / d angle_g |psi>``.

    psi before a layer is taken from ``before_layer`` (kept by the forward pass) instead of
    un-applying the layer's blocks: a copy costs 0.3 ns/amplitude, a layer ~7.
    """
    for i in range(len(ops) - 1, -1, -1):
        prepared = ops[i]
        op = prepared.op
        if isinstance(op, DiagonalOp) and op.angle_index.size:
            # d exp(i theta p) = i p exp(i theta p): 2 Re <lam| i p |psi> = -2 p . Im(conj(lam) psi)
            np.add.at(grads, (slice(None), op.angle_index),
                      -2.0 * op.split_patterns().contract(_imag_overlap(lam.state, psi.state)))
        elif isinstance(op, LayerOp) and prepared.generators:
            _layer_vjp_gradients(prepared, psi.state, lam.state, grads)
        lam.apply(prepared, inverse=True)
        if i in before_layer:
            psi.state = before_layer.pop(i)
        else:
            psi.apply(prepared, inverse=True)


def _imag_overlap(lam: np.ndarray, psi: np.ndarray) -> np.ndarray:
    """Im(conj(lam) psi) elementwise = lam.re psi.im - lam.im psi.re, (R, 2^n) real."""
    out = lam.real * psi.imag
    out -= lam.imag * psi.real
    return out


# Qubits below this are read from one real GEMM over groups of 2^LOW_CROSS_QUBITS amplitudes
# (their re/im floats are interleaved too finely for strided dot products: 1-2 ns/amplitude per
# qubit measured, against ~2 ns/amplitude for the GEMM giving all of them at once).
LOW_CROSS_QUBITS = 3


def _layer_vjp_gradients(prepared: PreparedOp, psi: np.ndarray, lam: np.ndarray,
                         grads: np.ndarray) -> None:
    """``grads[r, g] += 2 Re <lam| G_g |psi>`` for every generator ``G = dM M^dagger`` of a layer.

    The layer's gates commute, so every generator is evaluated at the state after the layer; a
    single-qubit G on qubit q needs only the reduced cross matrix
    ``C_q[i, j] = sum over the other qubits of conj(lam[.., i, ..]) psi[.., j, ..]``:
    ``2 Re <lam|G|psi> = 2 Re sum_ij G_ij C_q[i, j]``.
    """
    num_qubits = psi.shape[-1].bit_length() - 1
    qubits = sorted({q for _, q, _ in prepared.generators})
    crosses = _qubit_crosses(lam, psi, qubits, num_qubits,
                             [G for _, _, G in prepared.generators])
    for g, q, generator in prepared.generators:
        grads[:, g] += 2.0 * (generator * crosses[q]).sum(axis=(1, 2)).real


def _qubit_crosses(lam: np.ndarray, psi: np.ndarray, qubits: list[int], num_qubits: int,
                   generators: list[np.ndarray]) -> dict[int, np.ndarray]:
    """``C_q`` (R, 2, 2) complex for each qubit in ``qubits``.

    Entries are real dot products of the float views: ``Re C_ij = <lam_i, psi_j>`` and
    ``Im C_ij = <i lam_i, psi_j>``; imaginary parts are computed only when some generator has an
    imaginary entry (RY's generator -iY/2 is real, so RY layers need two dots per qubit).
    """
    rows = psi.shape[0]
    real = real_dtype(psi.dtype)
    need_real = np.zeros((2, 2), bool)
    need_imag = np.zeros((2, 2), bool)
    for generator in generators:
        need_real |= np.any(generator.real != 0, axis=0)
        need_imag |= np.any(generator.imag != 0, axis=0)
    lam_f, psi_f = lam.view(real), psi.view(real)
    ilam_f = (lam * 1j).view(real) if need_imag.any() else None
    crosses: dict[int, np.ndarray] = {}
    low = min(LOW_CROSS_QUBITS, num_qubits)
    if any(q < low for q in qubits):
        crosses.update(_low_crosses(lam_f, psi_f, low, rows))
    for q in qubits:
        if q < low:
            continue
        span = 2 << q  # floats per half-run with bit q fixed
        x, y = lam_f.reshape(rows, -1, 2, span), psi_f.reshape(rows, -1, 2, span)
        ix = ilam_f.reshape(rows, -1, 2, span) if ilam_f is not None else None
        cross = np.zeros((rows, 2, 2), dtype=psi.dtype)
        for i in range(2):
            for j in range(2):
                if need_real[i, j]:
                    cross[:, i, j] += _batched_dot(x[:, :, i], y[:, :, j])
                if need_imag[i, j]:
                    cross[:, i, j] += 1j * _batched_dot(ix[:, :, i], y[:, :, j])
        crosses[q] = cross
    return crosses


def _batched_dot(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """sum over the last two axes of x * y, for (R, H, S) strided views: (R,)."""
    return np.matmul(x[:, :, None, :], y[:, :, :, None]).sum(axis=(1, 2, 3))


def _low_crosses(lam_f: np.ndarray, psi_f: np.ndarray, width: int, rows: int):
    """``C_q`` for the ``width`` lowest qubits from one real GEMM per row.

    Rows of X are groups of 2^width amplitudes as (amplitude, re/im) floats; ``X^T Y`` holds every
    product pair of the group, from which the complex d x d cross of the group, then each qubit's
    2x2 marginal, follow.
    """
    d = 1 << width
    x = lam_f.reshape(rows, -1, 2 * d)
    y = psi_f.reshape(rows, -1, 2 * d)
    pairs = np.matmul(x.swapaxes(1, 2), y).reshape(rows, d, 2, d, 2)
    group = (pairs[:, :, 0, :, 0] + pairs[:, :, 1, :, 1]
             + 1j * (pairs[:, :, 0, :, 1] - pairs[:, :, 1, :, 0]))  # (R, d, d) complex
    out = {}
    for q in range(width):
        hi, lo = 1 << (width - q - 1), 1 << q
        view = group.reshape(rows, hi, 2, lo, hi, 2, lo)
        out[q] = np.einsum("rhalhbl->rab", view)
    return out


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
                      lam: np.ndarray, grads: np.ndarray,
                      tangents: list[tuple[int, int, np.ndarray]] | None = None) -> None:
    """Gradients of the product-state prefix: 2 Re <env_q | d v_q> for each qubit chain.

    ``tangents``: ``prefix_tangents(prefix, angles)`` when the caller has them already.
    """
    if tangents is None:
        tangents = prefix_tangents(prefix, angles)
    if not tangents:
        return
    envs = environments(lam.conj(), vectors)  # (R, K, n, 2)
    for q, g, tangent in tangents:
        value = np.einsum("rki,ri->rk", envs[:, :, q], tangent)
        grads[:, :, g] += 2.0 * value.real


def prefix_tangents(prefix: ProductPrefix, angles: np.ndarray) -> list[tuple[int, int, np.ndarray]]:
    """``(qubit, angle column, d v_q / d angle (R, 2))`` for every angle of the prefix."""
    return [(q, g, tangent) for q, chain in enumerate(prefix.chains)
            if any(gate.angle_index for gate in chain)
            for g, tangent in _chain_tangents(chain, angles, angles.shape[0])]


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
