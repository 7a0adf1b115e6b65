"""``qgen train``'s circuit options: a circuit-library ansatz, a feature map, observables, or a QPY file.

They pass through unchanged to ``qgen.api.run_config`` (``qgen.circuits.choice`` resolves them), so the
command line and Python accept the same choices.
"""

from __future__ import annotations

from pathlib import Path

import click

from qgen.circuits.spec import FAMILIES, FEATURE_MAPS

_OPTIONS = [
    click.option("--ansatz", type=click.Choice([f for f in FAMILIES if f != "custom"]), default="qgen",
                 show_default=True, help="the variational part: qgen's RZ·RY layers or a qiskit.circuit.library ansatz"),
    click.option("--reps", type=click.IntRange(min=1), default=None, help="the ansatz's repetitions (= --layers)"),
    click.option("--feature-map", type=click.Choice(FEATURE_MAPS), default="angle", show_default=True,
                 help="input encoding: RY angles, z_feature_map, zz_feature_map, or RY angles re-uploaded per layer"),
    click.option("--feature-reps", type=click.IntRange(min=1), default=1, show_default=True,
                 help="repetitions of z_feature_map / zz_feature_map"),
    click.option("--rotation-blocks", default=None, help="--ansatz n_local: rotation gates, e.g. rx,ry"),
    click.option("--entanglement-blocks", default=None, help="--ansatz n_local: entangling gates, e.g. crz or cx"),
    click.option("--observables", default=None,
                 help="readouts: z (Z per qubit), zz (neighbour ZZ), z+zz, or Pauli labels such as ZZII,IXXI "
                      "(qubit 0 rightmost); default: --readout's"),
    click.option("--circuit", type=click.Path(dir_okay=False, path_type=Path), default=None,
                 help="a QPY file with your own parametrized circuit (replaces --ansatz and --feature-map)"),
    click.option("--input-params", default=None,
                 help="--circuit: its input parameters, a ParameterVector name or comma-separated names "
                      "(default: x); every other parameter is a trainable weight"),
]


def circuit_options(command):
    """Add the options above to ``command``; they arrive as keyword arguments of the same names."""
    for option in reversed(_OPTIONS):
        command = option(command)
    return command
