"""``VJPTorchConnector``: TorchConnector whose backward is one vector-Jacobian product when it can.

Stock ``TorchConnector`` asks the QNN for full Jacobians (rows x K readouts x P parameters) and
multiplies them by the upstream gradient afterwards. With qgen's exact gradient that is K reverse
sweeps per row where one, with the cotangent-weighted observable ``sum_k g_k O_k``, gives the same
numbers (``ExactEstimatorGradient.vjp``): about K times less backward work for K readouts.

The VJP path is taken for an ``EstimatorQNN`` whose gradient is an ``ExactEstimatorGradient`` and
whose observables are Pauli sums, on a dense connector. Everything else (Aer, fake devices,
hardware, sparse networks) runs stock TorchConnector unchanged. The module is a TorchConnector
subclass with no extra parameters or buffers, so its ``state_dict`` is the stock one (``weight``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from qiskit.circuit import QuantumCircuit
from qiskit.quantum_info import Pauli, SparsePauliOp
from qiskit_machine_learning.connectors import TorchConnector
from qiskit_machine_learning.exceptions import QiskitMachineLearningError
from qiskit_machine_learning.neural_networks import EstimatorQNN

from qgen.quantum.gradients import ExactEstimatorGradient
from qgen.quantum.qiskit_ml_private import forward_circuit

VJP = "vjp"
JACOBIAN = "jacobian"


@dataclass(frozen=True)
class ExactVJP:
    """What the backward needs to ask the exact gradient for a VJP of one EstimatorQNN."""

    qnn: EstimatorQNN
    gradient: ExactEstimatorGradient
    circuit: QuantumCircuit
    observables: tuple[SparsePauliOp, ...]
    columns: np.ndarray  # circuit parameter j is column columns[j] of (inputs, weights)

    @classmethod
    def of(cls, network, sparse: bool) -> ExactVJP | None:
        """The plan for ``network``, or None when the stock Jacobian path must run."""
        if sparse or not isinstance(network, EstimatorQNN):
            return None
        gradient = network.gradient
        if not isinstance(gradient, ExactEstimatorGradient):
            return None
        observables = []
        for op in network.observables:
            if isinstance(op, Pauli):
                op = SparsePauliOp(op)
            if not isinstance(op, SparsePauliOp):
                return None
            observables.append(op)
        circuit = forward_circuit(network)
        if circuit is not None and circuit.num_parameters == network.num_inputs + network.num_weights:
            # The circuit the QNN's forward sends (re-parametrized by qiskit-machine-learning so
            # that its parameters sort as inputs, then weights): asking the gradient about this
            # very object lets it reuse the forward's simulation (chain_simulate.RecentRuns).
            columns = np.arange(circuit.num_parameters, dtype=np.int64)
        else:
            circuit = network.circuit
            position = {p: i for i, p in enumerate([*network.input_params,
                                                    *network.weight_params])}
            columns = np.array([position[p] for p in circuit.parameters], dtype=np.int64)
        return cls(network, gradient, circuit, tuple(observables), columns)

    def backward(self, inputs: np.ndarray, weights: np.ndarray, upstream: np.ndarray):
        """(input gradients (R, I) or None, weight gradients (W,) or None), like the stock path."""
        num_inputs, num_weights = self.qnn.num_inputs, self.qnn.num_weights
        values = np.concatenate([inputs, np.broadcast_to(weights, (inputs.shape[0], num_weights))],
                                axis=1)
        if values.shape[1] == 0:
            return None, None
        grads = np.empty_like(values)
        grads[:, self.columns] = self.gradient.vjp(self.circuit, self.observables,
                                                   values[:, self.columns], upstream)
        input_grad = grads[:, :num_inputs] if self.qnn.input_gradients and num_inputs else None
        weight_grad = grads[:, num_inputs:].sum(axis=0) if num_weights else None
        return input_grad, weight_grad


class _ExactVJPFunction(torch.autograd.Function):
    """Forward as stock TorchConnector (dense); backward through ``ExactVJP``."""

    @staticmethod
    def forward(ctx, input_data: torch.Tensor, weights: torch.Tensor, plan: ExactVJP):
        qnn = plan.qnn
        if input_data.shape[-1] != qnn.num_inputs:
            raise QiskitMachineLearningError(
                f"Invalid input dimension! Received {input_data.shape} and "
                + f"expected input compatible to {qnn.num_inputs}"
            )
        ctx.plan = plan
        ctx.save_for_backward(input_data, weights)
        result = qnn.forward(input_data.detach().cpu().numpy(), weights.detach().cpu().numpy())
        result_tensor = torch.as_tensor(result, dtype=torch.float)
        if len(input_data.shape) == 1:
            result_tensor = result_tensor[0]
        return result_tensor.to(input_data.device)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        input_data, weights = ctx.saved_tensors
        plan: ExactVJP = ctx.plan
        inputs = _input_rows(input_data, plan.qnn.num_inputs)
        upstream = grad_output.detach().cpu().double().numpy().reshape(inputs.shape[0], -1)
        input_grad, weight_grad = plan.backward(
            inputs, np.asarray(weights.detach().cpu().numpy(), dtype=float), upstream)
        # float32 like the stock connector (it casts the Jacobians before contracting them).
        if input_grad is not None:
            input_grad = torch.as_tensor(input_grad, dtype=torch.float).reshape(input_data.shape)
            input_grad = input_grad.to(input_data.device)
        if weight_grad is not None:
            weight_grad = torch.as_tensor(weight_grad, dtype=torch.float).to(weights.device)
        return input_grad, weight_grad, None


def _input_rows(input_data: torch.Tensor, num_inputs: int) -> np.ndarray:
    """(rows, num_inputs) float64, as ``NeuralNetwork._validate_input`` lays the input out."""
    values = np.asarray(input_data.detach().cpu().numpy(), dtype=float)
    rows = int(np.prod(values.shape[:-1])) if values.ndim > 1 else 1
    return values.reshape(rows, num_inputs)


class VJPTorchConnector(TorchConnector):
    """``TorchConnector`` (same arguments, parameters and state_dict) with a VJP backward.

    ``backward_path`` says which backward the next call will use: ``"vjp"`` (qgen's exact
    gradient, one reverse sweep per row) or ``"jacobian"`` (stock TorchConnector).
    """

    def __init__(self, neural_network, initial_weights=None, sparse: bool | None = None):
        super().__init__(neural_network, initial_weights=initial_weights, sparse=sparse)
        self._plan: ExactVJP | None = None

    def _vjp_plan(self) -> ExactVJP | None:
        network = self.neural_network
        # ``gradient`` is a public attribute of EstimatorQNN: re-plan if someone swaps it.
        if self._plan is None or self._plan.gradient is not getattr(network, "gradient", None):
            self._plan = ExactVJP.of(network, bool(self.sparse))
        return self._plan

    @property
    def backward_path(self) -> str:
        return VJP if self._vjp_plan() is not None else JACOBIAN

    def forward(self, input_data: torch.Tensor | None = None) -> torch.Tensor:
        plan = self._vjp_plan()
        if plan is None:
            return super().forward(input_data)
        input_ = torch.zeros(0) if input_data is None else input_data
        return _ExactVJPFunction.apply(input_, self.weight, plan)
