"""The options of qiskit-ibm-runtime's executor primitives, from a backend spec.

What these options make the executor run (and so what a job costs) is executor_cost.py, beside
this module; runtime.py hands the options to the primitives it builds.

qiskit-ibm-runtime is imported where the options are made, not at the top (deferred): it takes
~0.9 s to import (measured), executor_cost.py imports this module for every plan, and only commands
on kind ``ibm`` need it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qgen.backends.spec import BackendSpec, shots_for_precision
from qgen.errors import QgenError

if TYPE_CHECKING:
    from qiskit_ibm_runtime.options_models import EstimatorOptions, SamplerOptions

EXECUTOR_RESILIENCE_LEVELS = (0, 1, 2)


def estimator_options(spec: BackendSpec) -> EstimatorOptions:
    """Executor-Estimator options from a backend spec.

    precision > 0 wins over shots (the estimator's target is a precision; shots = 1/precision**2).
    twirling = true turns on gate and measurement twirling; false leaves what resilience_level needs
    (level 1's readout mitigation always twirls measurements).
    """
    from qiskit_ibm_runtime.options_models import EstimatorOptions  # deferred: see the module docstring

    if spec.resilience_level not in EXECUTOR_RESILIENCE_LEVELS:
        raise QgenError(
            f"backend {spec.name!r}: resilience_level {spec.resilience_level} is not supported by the "
            f"executor Estimator (choose 0, 1 or 2)"
        )
    options = EstimatorOptions(resilience_level=spec.resilience_level)
    if spec.precision > 0:
        options.default_precision = spec.precision
    elif spec.shots is not None:
        options.default_shots = spec.shots
    _apply_common_options(options, spec)
    return options


def sampler_options(spec: BackendSpec) -> SamplerOptions:
    """Executor-Sampler options. resilience_level does not apply: the sampler returns raw bits."""
    from qiskit_ibm_runtime.options_models import SamplerOptions  # deferred: see the module docstring

    options = SamplerOptions()
    if spec.shots is not None:
        options.default_shots = spec.shots
    elif spec.precision > 0:
        options.default_shots = shots_for_precision(spec.precision)
    _apply_common_options(options, spec)
    return options


def _apply_common_options(options: EstimatorOptions | SamplerOptions, spec: BackendSpec) -> None:
    options.dynamical_decoupling.enable = spec.dynamical_decoupling
    if spec.twirling:
        options.twirling.enable_gates = True
        options.twirling.enable_measure = True
    if spec.seed_simulator is not None:  # only local simulations read it
        options.simulator.seed_simulator = spec.seed_simulator
