"""Fast quantum back-ends for the QNN bottleneck, behind Qiskit's own interfaces.

Public entry points:

* ``VectorizedStatevectorEstimator`` - exact ``BaseEstimatorV2``, all bindings of a PUB at once, on a
  vectorized statevector or an untruncated matrix-product state (``chain``), chosen per circuit.
* ``ExactEstimatorGradient`` - exact Jacobian on that estimator (adjoint, or MPS reverse mode).
* ``BatchedParamShiftEstimatorGradient`` - parameter shift for any ``BaseEstimatorV2`` with one
  broadcast PUB per circuit (one primitive job per backward).

Module map:

* ``gate_ir``         - what both exact compilers share: the gate walk (``gate_instructions``), angle
  programs (parameters -> gate angles), gate kinds and closed-form gate matrices/derivatives.
* ``statevector``     - statevector compiler (fused prefix/diagonal/permutation/layer ops), kernels
  (ops prepared once per call, cache-sized row chunks) and compiled Pauli observables.
* ``adjoint``         - reverse mode on statevector programs (adjoint Jacobian and VJP).
* ``chain``           - untruncated MPS compiler (bond dimensions from the circuit alone) and step matrices.
* ``chain_simulate``  - the MPS forward pass with a tape, recent runs kept for the VJP.
* ``chain_readout``   - environments: Pauli-string values and their cotangents on an MPS.
* ``chain_adjoint``   - reverse mode on chain programs (Jacobian and VJP).
* ``exact_estimator`` - the estimator and the automatic method choice (``choose_method``).
* ``gradients``       - the two ``BaseEstimatorGradient`` implementations above (+ ``vjp``).
* ``connector``       - ``VJPTorchConnector``: TorchConnector whose backward is one VJP on the exact
  gradient (stock Jacobian path for every other gradient).
"""

from qgen.quantum.exact_estimator import VectorizedStatevectorEstimator
from qgen.quantum.gate_ir import UnsupportedOperationError
from qgen.quantum.gradients import BatchedParamShiftEstimatorGradient, ExactEstimatorGradient

__all__ = [
    "BatchedParamShiftEstimatorGradient",
    "ExactEstimatorGradient",
    "UnsupportedOperationError",
    "VectorizedStatevectorEstimator",
]
