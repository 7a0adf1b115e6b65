"""Backend specifications: the typed form of one ``[backends.NAME]`` table of backends.toml.

Only the checks every kind shares live here; what a kind needs besides (a device, a method it
knows) is checked by its class (``QuantumBackend.validate_spec``), which the registry runs when
it reads backends.toml or builds a backend.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from qgen.errors import QgenError

EXECUTION_MODES = ("job", "batch", "session")
# Aer's names for its own option (AerSimulator(precision=...)); "precision" here already means an
# estimator's target standard error, so the amplitude format has a key of its own
SIMULATION_PRECISIONS = ("double", "single")


def shots_for_precision(precision: float) -> int:
    """Shots per binding that reach a target ``precision`` (standard error 1/sqrt(shots)): the one
    place where a precision becomes a shot count."""
    return math.ceil(1.0 / precision**2)


@dataclass(frozen=True)
class BackendSpec:
    name: str
    kind: str
    description: str = ""
    device: str | None = None
    noise: str = "ideal"
    optimization_level: int = 1
    seed_transpiler: int = 1234
    shots: int | None = None
    precision: float = 0.0
    method: str = "automatic"
    simulation_precision: str = "double"
    seed_simulator: int | None = None
    shot_budget: int | None = None
    max_pubs_per_job: int | None = None
    max_bindings_per_job: int | None = None
    execution_mode: str = "job"
    dynamical_decoupling: bool = False
    twirling: bool = False
    resilience_level: int = 0

    def __post_init__(self) -> None:
        if self.execution_mode not in EXECUTION_MODES:
            raise QgenError(
                f"backend {self.name!r}: unknown execution_mode {self.execution_mode!r}; "
                f"choose one of {', '.join(EXECUTION_MODES)}"
            )
        if self.simulation_precision not in SIMULATION_PRECISIONS:
            raise QgenError(
                f"backend {self.name!r}: simulation_precision must be one of "
                f"{', '.join(SIMULATION_PRECISIONS)}, got {self.simulation_precision!r}"
            )
        if not 0 <= self.optimization_level <= 3:
            raise QgenError(f"backend {self.name!r}: optimization_level must be 0..3")
        if self.precision < 0:
            raise QgenError(f"backend {self.name!r}: precision must be >= 0")
        for key in ("shots", "shot_budget", "max_pubs_per_job", "max_bindings_per_job"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise QgenError(f"backend {self.name!r}: {key} must be >= 1")

    @property
    def shots_per_binding(self) -> int | None:
        """Shots one estimator binding costs: a precision target wins over ``shots`` (the runtime
        estimator turns a precision into ceil(1/precision**2) shots per binding)."""
        return shots_for_precision(self.precision) if self.precision else self.shots
