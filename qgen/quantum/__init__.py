"""Fast quantum back-ends for the QNN bottleneck, behind Qiskit's own interfaces.

* ``VectorizedStatevectorEstimator`` - exact ``BaseEstimatorV2``, all bindings of a PUB at once, on a
  vectorized statevector or an untruncated matrix-product state (``chain``), chosen per circuit.
* ``ExactEstimatorGradient`` - exact Jacobian on that estimator (adjoint, or MPS reverse mode).
* ``BatchedParamShiftEstimatorGradient`` - parameter shift for any ``BaseEstimatorV2`` with one
  broadcast PUB per circuit (one primitive job per backward).
"""

from qgen.quantum.exact_estimator import VectorizedStatevectorEstimator
from qgen.quantum.gradients import BatchedParamShiftEstimatorGradient, ExactEstimatorGradient
from qgen.quantum.statevector import UnsupportedOperationError

__all__ = [
    "BatchedParamShiftEstimatorGradient",
    "ExactEstimatorGradient",
    "UnsupportedOperationError",
    "VectorizedStatevectorEstimator",
]
