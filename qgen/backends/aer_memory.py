"""What an Aer simulation method needs in memory, checked before a model is built.

Aer finds out only when it runs the first circuit ("Insufficient memory ... Required memory:
16777216M"), which is after a run directory was created; a statevector of 40 qubits needs 16 TiB.
Each method's state is a fixed number of complex128 amplitudes per qubit count, so the need is
known up front and compared with what Aer may use (its default ``max_memory_mb``: the machine's
physical memory).
"""

from __future__ import annotations

from qgen.errors import QgenError
from qgen.memory import physical_memory_bytes, size

BYTES_PER_AMPLITUDE = 16  # complex128

#: amplitudes of each method's state as a power of 2 per qubit (statevector 2^n, density matrix
#: 4^n, ...); methods not listed (matrix product state, stabilizers) grow with entanglement or
#: gates, not with 2^n, and are not estimated here.
EXPONENT_PER_QUBIT = {"automatic": 1, "statevector": 1, "density_matrix": 2, "unitary": 2, "superop": 4}


def state_bytes(method: str, num_qubits: int) -> int | None:
    """Bytes of ``method``'s state for ``num_qubits``; None where it is not a dense state."""
    exponent = EXPONENT_PER_QUBIT.get(method)
    return None if exponent is None else BYTES_PER_AMPLITUDE << (exponent * num_qubits)


def check_fits_in_memory(method: str, num_qubits: int, backend_name: str, limit: int | None = None) -> None:
    """Refuse a simulation whose state cannot fit in ``limit`` bytes (default: physical memory),
    saying how many qubits would fit."""
    need = state_bytes(method, num_qubits)
    limit = physical_memory_bytes() if limit is None else limit
    if need is None or limit is None or need <= limit:
        return
    fits = num_qubits
    while fits > 0 and state_bytes(method, fits) > limit:
        fits -= 1
    raise QgenError(f"backend {backend_name}: Aer's {method} method needs {size(need)} for {num_qubits} qubits "
                    f"but this machine has {size(limit)} of memory; at most {fits} qubits fit. Use fewer "
                    "--qubits, or a backend with method = \"matrix_product_state\" in backends.toml")
