"""An estimator that behaves like a device within the statistics: gate noise, readout error, shot noise.

Kind ``fake`` used to return Aer's exact density-matrix expectation values: no readout error (an
expectation value never passes a measurement), no shot noise, bit-identical on every call, while
backends.toml said ``shots = 4096``. Hardware at resilience level 0 measures each Pauli basis with
that many shots through the readout error. This estimator does the same on the reduced circuit:

1. Aer's density matrix (with the device's gate noise) gives the exact outcome probabilities of each
   measurement basis, one simulation per binding whatever the shot count;
2. the noise model's own per-qubit readout matrices are applied to them (what a measurement would do);
3. ``shots`` outcomes are drawn from those probabilities (multinomial), and every observable of the
   basis is averaged over the *same* shots, as a device measures them together.

Why not Aer's SamplerV2 with shots: it gives the same distribution, but costs a pass over every shot's
bitstring; the probabilities are exact, so drawing counts from them is cheaper and just as faithful.
Why not Aer's EstimatorV2 with ``precision``: it adds Gaussian noise of a fixed width (not shot noise,
no readout error), drawn from one fixed seed on every call.

Randomness: one ``numpy.random.SeedSequence`` rooted at the spec's ``seed_simulator``; every ``run``
spawns a child, so calls differ while a run (same calls in the same order) is reproducible.
``shots=None`` gives the infinite-shot limit: the readout-affected exact values, stds 0.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from qiskit.primitives import BaseEstimatorV2, PrimitiveJob, PrimitiveResult
from qiskit.primitives.containers import DataBin, PubResult
from qiskit.primitives.containers.estimator_pub import EstimatorPub
from qiskit_aer import AerSimulator

from qgen.backends.aer_runs import run_bindings, thread_options
from qgen.backends.reduction import readout_confusion
from qgen.backends.spec import shots_for_precision
from qgen.errors import QgenError

#: Basis rotations before a Z measurement: X -> H, Y -> Sdg then H (as hardware estimators do).
_ROTATIONS = {"X": ("h",), "Y": ("sdg", "h")}


class ShotNoiseEstimator(BaseEstimatorV2):
    """BaseEstimatorV2 over Aer's density matrix: readout error + multinomial shot noise (see module)."""

    def __init__(self, noise_model, *, shots: int | None, seed: int | None = None) -> None:
        super().__init__()
        self.noise_model = noise_model
        self.shots = shots
        self._seeds = np.random.SeedSequence(seed)

    def run(self, pubs: Iterable, *, precision: float | None = None) -> PrimitiveJob:
        coerced = [EstimatorPub.coerce(pub, precision) for pub in pubs]
        # seeds are drawn here, in call order, so a run is reproducible whatever thread simulates it
        rngs = [np.random.default_rng(child) for child in self._seeds.spawn(len(coerced))]
        job = PrimitiveJob(self._run, coerced, rngs)
        job._submit()
        return job

    def _shots_for(self, pub: EstimatorPub) -> int | None:
        if pub.precision:  # a precision target wins, as on the runtime estimator
            return shots_for_precision(pub.precision)
        return self.shots

    def _run(self, pubs: list[EstimatorPub], rngs: list[np.random.Generator]) -> PrimitiveResult:
        # EstimatorQNN sends one PUB per observable, all with the same circuit and bindings: the exact
        # probabilities are simulated once per call and basis; each PUB still draws its own shots
        cache: dict = {}
        return PrimitiveResult([self._run_pub(pub, rng, cache) for pub, rng in zip(pubs, rngs)],
                               metadata={"version": 2})

    def _run_pub(self, pub: EstimatorPub, rng: np.random.Generator, cache: dict) -> PubResult:
        circuit = pub.circuit
        n = circuit.num_qubits
        shots = self._shots_for(pub)
        confusion = readout_confusion(self.noise_model, n)
        param_shape = pub.parameter_values.shape
        values = pub.parameter_values.as_array(circuit.parameters).reshape(-1, circuit.num_parameters)
        flat_obs = pub.observables.ravel().tolist()
        terms = {label for obs in flat_obs for label in obs}
        bases = _group_by_basis(terms)

        # per basis: (bindings, 2**n) outcome counts or probabilities, and the terms it measures
        mean: dict[str, np.ndarray] = {}
        frequencies_of: dict[str, np.ndarray] = {}
        basis_of: dict[str, str] = {}
        for basis, labels in bases.items():
            key = (id(circuit), basis, values.shape, values.tobytes())
            if key not in cache:
                cache[key] = _apply_readout(self._probabilities(circuit, basis, values), confusion)
            probs = cache[key]
            signs = np.stack([_z_signs(label, n) for label in labels])          # (terms, 2**n)
            frequencies = probs if shots is None else rng.multinomial(shots, probs) / shots
            for label, sign in zip(labels, signs):
                mean[label] = frequencies @ sign
                basis_of[label] = basis
            frequencies_of[basis] = frequencies
        evs_flat = np.zeros((len(values), len(flat_obs)))
        stds_flat = np.zeros_like(evs_flat)
        for j, obs in enumerate(flat_obs):
            per_basis: dict[str, list[tuple[str, float]]] = {}
            for label, coeff in obs.items():
                evs_flat[:, j] += np.real(coeff) * mean[label]
                per_basis.setdefault(basis_of[label], []).append((label, np.real(coeff)))
            if shots is not None:
                variance = np.zeros(len(values))
                for basis, parts in per_basis.items():
                    # the observable's per-shot value: its terms of one basis come from the same shots
                    value = sum(c * _z_signs(label, n) for label, c in parts)      # (2**n,)
                    freq = frequencies_of[basis]
                    variance += np.clip(freq @ value**2 - (freq @ value) ** 2, 0, None) / shots
                stds_flat[:, j] = np.sqrt(variance)

        param_index = np.arange(len(values)).reshape(param_shape)
        obs_index = np.arange(len(flat_obs)).reshape(pub.observables.shape)
        bi, oj = np.broadcast_arrays(param_index, obs_index)
        evs, stds = evs_flat[bi, oj], stds_flat[bi, oj]
        return PubResult(DataBin(evs=evs, stds=stds, shape=evs.shape),
                         metadata={"shots": shots, "target_precision": pub.precision,
                                   "circuit_metadata": circuit.metadata})

    def _probabilities(self, circuit, basis: str, values: np.ndarray) -> np.ndarray:
        """Exact outcome probabilities (bindings, 2**n) of measuring ``basis`` (a label, qubit 0 last)."""
        measured = circuit.copy()
        for q, letter in enumerate(reversed(basis)):
            for gate in _ROTATIONS.get(letter, ()):
                getattr(measured, gate)(q)
        measured.save_probabilities(label="p")
        simulator = AerSimulator(method="density_matrix", noise_model=self.noise_model, **thread_options())
        data = run_bindings(simulator, measured, values)
        if circuit.num_parameters:
            return np.stack([np.asarray(d["p"]) for d in data])
        probs = np.asarray(data[0]["p"])
        return np.broadcast_to(probs, (len(values), probs.size))


def _group_by_basis(labels: Iterable[str]) -> dict[str, list[str]]:
    """Pauli terms grouped by the basis that measures them: X/Y where the term has them, Z elsewhere."""
    bases: dict[str, list[str]] = {}
    for label in sorted(labels):
        if not set(label) <= set("IXYZ"):
            raise QgenError(f"the shot-noise estimator takes Pauli observables, got term {label!r}")
        basis = "".join(ch if ch in "XY" else "Z" for ch in label)
        bases.setdefault(basis, []).append(label)
    return bases


def _z_signs(label: str, n: int) -> np.ndarray:
    """(-1)^(parity of the outcome's bits on the term's support), for every outcome 0..2**n-1."""
    mask = sum(1 << q for q, ch in enumerate(reversed(label)) if ch != "I")
    outcomes = np.arange(2**n)
    parity = np.zeros(2**n, dtype=np.int64)
    bits = outcomes & mask
    while bits.any():
        parity ^= bits & 1
        bits = bits >> 1
    return 1.0 - 2.0 * parity


def _apply_readout(probs: np.ndarray, confusion: np.ndarray) -> np.ndarray:
    """P(read) from P(prepared): each qubit's 2x2 readout matrix applied along its axis."""
    n = confusion.shape[0]
    tensor = probs.reshape((len(probs),) + (2,) * n)  # axis 1 is qubit n-1 (outcome bit order)
    for q in range(n):
        axis = n - q  # qubit q's bit is the q-th from the right
        tensor = np.moveaxis(np.tensordot(tensor, confusion[q], axes=([axis], [0])), -1, axis)
    out = np.clip(tensor.reshape(len(probs), -1), 0, None)
    return out / out.sum(axis=1, keepdims=True)  # multinomial needs rows that sum to 1 exactly
