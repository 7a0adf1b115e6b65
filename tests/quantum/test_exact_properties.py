"""Property tests: both exact methods against Qiskit's reference primitives on library circuits.

Hypothesis draws the circuit family, width, depth, entanglement, parameter values and observable;
every draw must agree with ``StatevectorEstimator`` (values) and with the stock parameter-shift
gradient on ``StatevectorEstimator`` (Jacobians) to 1e-6.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from qiskit import transpile
from qiskit.circuit.library import efficient_su2, n_local, real_amplitudes
from qiskit.primitives import StatevectorEstimator
from qiskit.quantum_info import SparsePauliOp
from qiskit_machine_learning.gradients import ParamShiftEstimatorGradient

from qgen.quantum import ExactEstimatorGradient, UnsupportedOperationError, VectorizedStatevectorEstimator
from qgen.quantum.exact_estimator import simulation_method

ATOL = 1e-6
BASIS = ["rx", "ry", "rz", "cx", "cz", "h", "sx", "x"]
SETTINGS = settings(max_examples=25, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def library_circuits(draw):
    n = draw(st.integers(2, 6))
    reps = draw(st.integers(1, 3))
    entanglement = draw(st.sampled_from(["linear", "reverse_linear", "circular", "pairwise", "full"]))
    family = draw(st.sampled_from(["real_amplitudes", "efficient_su2", "n_local_crz"]))
    if family == "real_amplitudes":
        qc = real_amplitudes(n, reps=reps, entanglement=entanglement)
    elif family == "efficient_su2":
        qc = efficient_su2(n, reps=reps, entanglement=entanglement)
    else:
        qc = n_local(n, ["ry", "rz"], "cz", entanglement=entanglement, reps=reps)
    qc = transpile(qc, basis_gates=BASIS, optimization_level=0)
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    values = rng.uniform(-np.pi, np.pi, size=(2, qc.num_parameters))
    labels = ["".join(rng.choice(list("IXYZ"), size=n)) for _ in range(3)]
    observable = SparsePauliOp(labels, rng.uniform(-1, 1, size=3)).simplify()
    return qc, values, observable


def _estimator(method: str) -> VectorizedStatevectorEstimator:
    return VectorizedStatevectorEstimator(method=method, max_bond=256)


def _mps_fits(qc) -> bool:
    try:
        simulation_method(qc, "mps", max_bond=256)
    except UnsupportedOperationError:
        return False
    return True


@SETTINGS
@given(library_circuits(), st.sampled_from(["statevector", "mps"]))
def test_expectation_values_match_the_reference(case, method):
    qc, values, observable = case
    assume(method == "statevector" or _mps_fits(qc))
    pub = (qc, observable, values)
    expected = StatevectorEstimator().run([pub]).result()[0].data.evs
    actual = _estimator(method).run([pub]).result()[0].data.evs
    np.testing.assert_allclose(actual, expected, atol=ATOL)


@SETTINGS
@given(library_circuits(), st.sampled_from(["statevector", "mps"]))
def test_jacobians_match_stock_parameter_shift(case, method):
    qc, values, observable = case
    assume(method == "statevector" or _mps_fits(qc))
    assume(qc.num_parameters <= 36)  # the stock reference runs one PUB per shifted binding
    observables = [observable, SparsePauliOp("Z" + "I" * (qc.num_qubits - 1))]
    circuits = [qc] * 4
    obs = [o for o in observables for _ in range(2)]
    rows = np.tile(values, (2, 1))
    stock = ParamShiftEstimatorGradient(StatevectorEstimator()).run(circuits, obs, rows).result()
    exact = ExactEstimatorGradient(_estimator(method)).run(circuits, obs, rows).result()
    np.testing.assert_allclose(np.asarray(exact.gradients), np.asarray(stock.gradients), atol=ATOL)
