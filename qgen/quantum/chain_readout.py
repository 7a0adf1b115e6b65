"""Reading out a chain's state: expectation values of Pauli strings and their cotangents.

Environments (contractions of the state with itself from either end of the chain) give every
value and, for the reverse pass (``chain_adjoint``), every cotangent ``d<P_t>/d conj(site)`` as a
local contraction. Single-site terms (the bottleneck's Z readouts) take a faster path through each
site's reduced density matrix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:  # a run keeps its plain environments (chain_simulate imports this module)
    from qgen.quantum.chain_simulate import ChainRun

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
            x[as_index(self.active), :, :, 1] *= -1
            return x
        rows = as_index(self.active)
        x[rows] = torch.einsum("tij,trxjb->trxib", self.dense, x[rows])
        return x


def as_index(items) -> slice | torch.Tensor:
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
                lenv = left.started[q][as_index(left.position[terms])]
                x = torch.einsum("trap,rpjc->trajc", lenv, site)
            else:
                x = torch.einsum("rap,rpjc->rajc", lp[0], site)[None]
            if in_right[terms[0]]:
                renv = right.started[q + 1][as_index(right.position[terms])]
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
