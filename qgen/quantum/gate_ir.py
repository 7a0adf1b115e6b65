"""Gate IR shared by both exact simulators (``statevector`` and ``chain``).

What lives here is what a compiler needs before it decides how to simulate:

* ``gate_instructions`` - the walk over a circuit's gates: qubit indices, one angle index per gate
  parameter, clear errors for what neither simulator can apply;
* ``AngleBuilder`` / ``AngleProgram`` - every gate parameter becomes one "angle" column;
  ``AngleProgram`` maps circuit parameter values ``(rows, P)`` to angles ``(rows, G)`` with one
  matrix product when the expressions are linear (``θ``, ``θ + π/2``, ``2θ`` - what ISA circuits
  contain) and binds them row by row otherwise;
* gate kinds (``DIAGONAL_GATES`` with their phase patterns, ``PERMUTATION_GATES``,
  ``LAYER_GATES``, ``PREFIX_GATES``, ``gate_kind``) and the closed-form single-qubit matrices and
  derivatives (``one_qubit_matrix``, ``gate_matrices``, ``gate_derivatives``).

Conventions follow Qiskit: qubit ``q`` is bit ``q`` of the basis index (little endian).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from qiskit.circuit import ControlFlowOp, ParameterExpression, QuantumCircuit

from qgen.errors import QgenError


class UnsupportedOperationError(QgenError, ValueError):
    """The circuit holds an operation the vectorized simulator cannot apply."""



# ---------------------------------------------------------------------------------------------
# Angles
# ---------------------------------------------------------------------------------------------


@dataclass
class AngleProgram:
    """``angles = values @ coeffs + offsets``, plus row-by-row binding for nonlinear expressions."""

    num_parameters: int
    coeffs: np.ndarray  # (P, G)
    offsets: np.ndarray  # (G,)
    nonlinear: dict[int, ParameterExpression]  # angle index -> expression (bound per row)
    parameter_index: dict  # Parameter -> column in the circuit's parameter order

    @property
    def num_angles(self) -> int:
        return self.offsets.shape[0]

    def values(self, params: np.ndarray) -> np.ndarray:
        angles = params @ self.coeffs + self.offsets
        for g, expr in self.nonlinear.items():
            angles[:, g] = [complex(expr.bind(self._binding(row, expr))).real for row in params]
        return angles

    def jacobian(self, params: np.ndarray) -> np.ndarray:
        """d angles / d params: ``(P, G)`` when linear, ``(rows, P, G)`` otherwise."""
        if not self.nonlinear:
            return self.coeffs
        jac = np.broadcast_to(self.coeffs, (params.shape[0], *self.coeffs.shape)).copy()
        for g, expr in self.nonlinear.items():
            for p in expr.parameters:
                d_expr = expr.gradient(p)
                col = self.parameter_index[p]
                for r, row in enumerate(params):
                    value = d_expr
                    if isinstance(d_expr, ParameterExpression):
                        value = d_expr.bind(self._binding(row, d_expr))
                    jac[r, col, g] = float(complex(value).real)
        return jac

    def _binding(self, row: np.ndarray, expr: ParameterExpression) -> dict:
        return {p: row[self.parameter_index[p]] for p in expr.parameters}



class AngleBuilder:
    """Collects one angle column per gate parameter while a compiler walks the gates."""

    def __init__(self, circuit: QuantumCircuit):
        self.parameter_index = {p: i for i, p in enumerate(circuit.parameters)}
        self.columns: list[np.ndarray] = []
        self.offsets: list[float] = []
        self.nonlinear: dict[int, ParameterExpression] = {}

    def add(self, value) -> int:
        column = np.zeros(len(self.parameter_index))
        offset = 0.0
        g = len(self.offsets)
        if isinstance(value, ParameterExpression) and value.parameters:
            linear = True
            for p in value.parameters:
                d = value.gradient(p)
                if isinstance(d, ParameterExpression) and d.parameters:
                    linear = False
                    break
                column[self.parameter_index[p]] = float(complex(d).real)
            if linear:
                offset = float(complex(value.bind({p: 0.0 for p in value.parameters})).real)
            else:
                column[:] = 0.0
                self.nonlinear[g] = value
        else:
            offset = float(complex(value).real)
        self.columns.append(column)
        self.offsets.append(offset)
        return g

    def build(self) -> AngleProgram:
        p = len(self.parameter_index)
        coeffs = np.stack(self.columns, axis=1) if self.columns else np.zeros((p, 0))
        return AngleProgram(p, coeffs, np.asarray(self.offsets, dtype=float), self.nonlinear,
                            self.parameter_index)


# ---------------------------------------------------------------------------------------------
# Single-qubit matrices (numpy, batched over rows: angles have shape (R,), matrices (R, 2, 2))
# ---------------------------------------------------------------------------------------------

_SQ2 = 1 / math.sqrt(2)
FIXED_1Q = {
    "h": np.array([[_SQ2, _SQ2], [_SQ2, -_SQ2]], dtype=complex),
    "x": np.array([[0, 1], [1, 0]], dtype=complex),
    "y": np.array([[0, -1j], [1j, 0]], dtype=complex),
    "z": np.diag([1, -1]).astype(complex),
    "s": np.diag([1, 1j]),
    "sdg": np.diag([1, -1j]),
    "t": np.diag([1, np.exp(1j * np.pi / 4)]),
    "tdg": np.diag([1, np.exp(-1j * np.pi / 4)]),
    "sx": 0.5 * np.array([[1 + 1j, 1 - 1j], [1 - 1j, 1 + 1j]]),
    "sxdg": 0.5 * np.array([[1 - 1j, 1 + 1j], [1 + 1j, 1 - 1j]]),
}


def _mat(a, b, c, d) -> np.ndarray:
    a, b, c, d = np.broadcast_arrays(*(np.asarray(v, dtype=complex) for v in (a, b, c, d)))
    return np.stack([np.stack([a, b], -1), np.stack([c, d], -1)], -2)


def _u(theta, phi, lam) -> np.ndarray:
    c, s = np.cos(theta / 2), np.sin(theta / 2)
    return _mat(c, -np.exp(1j * lam) * s, np.exp(1j * phi) * s, np.exp(1j * (phi + lam)) * c)


def _u_derivatives(theta, phi, lam) -> list[np.ndarray]:
    c, s = np.cos(theta / 2), np.sin(theta / 2)
    el, ep, epl = np.exp(1j * lam), np.exp(1j * phi), np.exp(1j * (phi + lam))
    zero = np.zeros_like(c)
    return [
        _mat(-s / 2, -el * c / 2, ep * c / 2, -epl * s / 2),
        _mat(zero, zero, 1j * ep * s, 1j * epl * c),
        _mat(zero, -1j * el * s, zero, 1j * epl * c),
    ]


def one_qubit_matrix(name: str, angles: list[np.ndarray]) -> np.ndarray:
    """The gate's 2x2 matrix for each row of angles: shape ``(R, 2, 2)`` (R=1 for fixed gates)."""
    if name in FIXED_1Q:
        return FIXED_1Q[name][None]
    if name == "rx":
        c, s = np.cos(angles[0] / 2), np.sin(angles[0] / 2)
        return _mat(c, -1j * s, -1j * s, c)
    if name == "ry":
        c, s = np.cos(angles[0] / 2), np.sin(angles[0] / 2)
        return _mat(c, -s, s, c)
    if name == "rz":
        e = np.exp(-0.5j * angles[0])
        return _mat(e, 0, 0, e.conj())
    if name in ("p", "u1"):
        return _mat(1, 0, 0, np.exp(1j * angles[0]))
    if name in ("u", "u3"):
        return _u(*angles)
    if name == "u2":
        return _u(np.full_like(angles[0], np.pi / 2), *angles)
    raise UnsupportedOperationError(f"no single-qubit matrix for gate {name!r}")


def one_qubit_derivatives(name: str, angles: list[np.ndarray]) -> list[np.ndarray]:
    """d matrix / d angle_k for each angle of the gate, each ``(R, 2, 2)``."""
    if name == "rx":
        c, s = np.cos(angles[0] / 2), np.sin(angles[0] / 2)
        return [_mat(-s / 2, -0.5j * c, -0.5j * c, -s / 2)]
    if name == "ry":
        c, s = np.cos(angles[0] / 2), np.sin(angles[0] / 2)
        return [_mat(-s / 2, -c / 2, c / 2, -s / 2)]
    if name == "rz":
        e = np.exp(-0.5j * angles[0])
        return [_mat(-0.5j * e, 0, 0, 0.5j * e.conj())]
    if name in ("p", "u1"):
        return [_mat(0, 0, 0, 1j * np.exp(1j * angles[0]))]
    if name in ("u", "u3"):
        return _u_derivatives(*angles)
    if name == "u2":
        return _u_derivatives(np.full_like(angles[0], np.pi / 2), *angles)[1:]
    return []


# Generators dM M^dagger of the rotations, written out: the product computed in floating point
# leaves ~1e-18 residues where the exact generator has zeros, and the adjoint's layer gradients
# skip the cross-matrix entries a generator does not use (RY's -iY/2 needs two of eight dots).
_ROTATION_GENERATORS = {
    "rx": np.array([[0, -0.5j], [-0.5j, 0]]),
    "ry": np.array([[0, -0.5], [0.5, 0]], dtype=complex),
    "rz": np.diag([-0.5j, 0.5j]),
    "p": np.diag([0, 1j]),
    "u1": np.diag([0, 1j]),
}


def one_qubit_generators(name: str, angles: list[np.ndarray]) -> list[np.ndarray]:
    """``dM/d angle_k @ M^dagger`` for each angle of the gate, each ``(R or 1, 2, 2)``."""
    if name in _ROTATION_GENERATORS:
        return [_ROTATION_GENERATORS[name][None]]
    adjoint = one_qubit_matrix(name, angles).conj().transpose(0, 2, 1)
    return [d @ adjoint for d in one_qubit_derivatives(name, angles)]


# Diagonal gates: phase(s) = sum_k angle_k * pattern_k(bits) + constant(bits).
# Each entry: (number of angles, function(bits of the gate's qubits) -> per-angle pattern list,
# constant pattern or None). Bits are float arrays over the 2^n basis states.
DIAGONAL_GATES: dict[str, tuple[Callable, Callable | None]] = {
    "rz": (lambda b: [b[0] - 0.5], None),
    "p": (lambda b: [b[0]], None),
    "u1": (lambda b: [b[0]], None),
    "rzz": (lambda b: [(b[0] + b[1]) % 2 - 0.5], None),
    "cp": (lambda b: [b[0] * b[1]], None),
    "cu1": (lambda b: [b[0] * b[1]], None),
    "crz": (lambda b: [b[0] * (b[1] - 0.5)], None),
    "z": (lambda b: [], lambda b: np.pi * b[0]),
    "s": (lambda b: [], lambda b: np.pi / 2 * b[0]),
    "sdg": (lambda b: [], lambda b: -np.pi / 2 * b[0]),
    "t": (lambda b: [], lambda b: np.pi / 4 * b[0]),
    "tdg": (lambda b: [], lambda b: -np.pi / 4 * b[0]),
    "cz": (lambda b: [], lambda b: np.pi * b[0] * b[1]),
    "ccz": (lambda b: [], lambda b: np.pi * b[0] * b[1] * b[2]),
}
PERMUTATION_GATES = {"x", "cx", "swap", "ccx"}
LAYER_GATES = {"rx", "ry", "h", "y", "sx", "sxdg", "u", "u3", "u2"}
# Diagonal single-qubit gates may also live in the product prefix as 2x2 matrices.
PREFIX_GATES = LAYER_GATES | {"rz", "p", "u1", "z", "s", "sdg", "t", "tdg", "x"}
IGNORED = {"barrier", "delay", "id"}
SUPPORTED = set(DIAGONAL_GATES) | PERMUTATION_GATES | LAYER_GATES | IGNORED

def gate_kind(name: str) -> str:
    """``diagonal``, ``permutation`` or ``layer`` (a single-qubit gate applied as a 2x2 matrix)."""
    if name in DIAGONAL_GATES:
        return "diagonal"
    if name in PERMUTATION_GATES:
        return "permutation"
    return "layer"


@dataclass(frozen=True)
class GateRef:
    name: str
    qubit: int
    angle_index: tuple[int, ...]


def gate_instructions(circuit: QuantumCircuit, builder: AngleBuilder, supported: set[str],
                      simulator: str) -> Iterator[tuple]:
    """``(operation, qubit indices, angle indices)`` of every gate; barriers etc. skipped.

    Raises ``UnsupportedOperationError`` naming the operation for anything not in ``supported``.
    """
    for inst in circuit.data:
        op = inst.operation
        if op.name in IGNORED:
            continue
        if isinstance(op, ControlFlowOp) or inst.clbits or getattr(op, "condition", None):
            raise UnsupportedOperationError(
                f"operation {op.name!r} needs classical bits or control flow; {simulator} "
                "only simulates unitary gates")
        if op.name not in supported:
            raise UnsupportedOperationError(
                f"gate {op.name!r} is not supported by {simulator}; transpile to {sorted(supported)}")
        qubits = [circuit.find_bit(q).index for q in inst.qubits]
        yield op, qubits, tuple(builder.add(p) for p in op.params)


def gate_matrices(gate: GateRef, angles: np.ndarray) -> np.ndarray:
    """(R or 1, 2, 2) matrices; angles that are equal on every row collapse to one matrix."""
    return one_qubit_matrix(gate.name, [_column(angles, g) for g in gate.angle_index])


def gate_derivatives(gate: GateRef, angles: np.ndarray) -> list[np.ndarray]:
    return one_qubit_derivatives(gate.name, [_column(angles, g) for g in gate.angle_index])


def gate_generators(gate: GateRef, angles: np.ndarray) -> list[np.ndarray]:
    return one_qubit_generators(gate.name, [_column(angles, g) for g in gate.angle_index])


def _column(angles: np.ndarray, g: int) -> np.ndarray:
    col = angles[:, g]
    return col[:1] if np.all(col == col[0]) else col

