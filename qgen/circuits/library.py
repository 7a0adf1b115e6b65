"""Bottleneck circuits from Qiskit's circuit library: a feature map for the inputs, then an ansatz.

The ansätze are the library's function forms (``real_amplitudes``, ``efficient_su2``, ``n_local``,
``pauli_two_design``); the feature maps are qgen's angle encoding (one RY per qubit), the library's
``z_feature_map`` / ``zz_feature_map``, or data re-uploading (the angle encoding again before every
layer, Pérez-Salinas et al. 2020). Input parameters are named ``x``, weights ``w``, so a circuit's
weight order (``circuit.parameters`` minus the inputs, sorted by name) is the same on every rebuild.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from qiskit.circuit import ParameterVector, QuantumCircuit
from qiskit.circuit import library as lib
from qiskit.exceptions import QiskitError

from qgen.circuits.layers import append_qgen_layers
from qgen.circuits.qnn_circuit import QNNCircuit
from qgen.circuits.readouts import parse_observable, readout_observables
from qgen.errors import QgenError

if TYPE_CHECKING:  # at run time the spec imports the builders (AnsatzSpec.num_weights), not the reverse
    from qgen.circuits.spec import AnsatzSpec

# pauli_two_design draws its rotation gates at random: fixed here so a config rebuilds one circuit
PAULI_TWO_DESIGN_SEED = 0


def library_entanglement(entanglement: str):
    """The library's ``entanglement`` argument for qgen's name ("ring" = "circular", "none" = no pairs)."""
    return {"ring": "circular", "none": []}.get(entanglement, entanglement)


def feature_map(spec: AnsatzSpec, x: ParameterVector) -> QuantumCircuit:
    """The encoding that runs once before the ansatz (re-uploading adds it per layer elsewhere)."""
    n = spec.n_qubits
    if spec.feature_map in ("angle", "reupload"):
        qc = QuantumCircuit(n)
        for q in range(n):
            qc.ry(x[q], q)
        return qc
    # zz_feature_map with no pairs is z_feature_map (the library refuses an empty pair list there)
    separable = spec.feature_map == "z_feature_map" or spec.entanglement == "none"
    build = lib.z_feature_map if separable else lib.zz_feature_map
    kwargs = {} if separable else {"entanglement": library_entanglement(spec.entanglement)}
    qc = build(n, reps=spec.feature_reps, parameter_prefix="x", **kwargs)
    # the library names its own vector "x" too, but a fresh one: bind it to ours
    return qc.assign_parameters(dict(zip(qc.parameters, x)))


def ansatz_block(spec: AnsatzSpec, reps: int, prefix: str, final_rotation: bool = True) -> QuantumCircuit:
    """``reps`` layers of the chosen ansatz with weights named ``prefix``."""
    n, ent = spec.n_qubits, library_entanglement(spec.entanglement)
    skip = not final_rotation
    if spec.family == "qgen":
        qc = QuantumCircuit(n)
        append_qgen_layers(qc, ParameterVector(prefix, 2 * n * reps), reps, spec.entanglement)
        return qc
    if spec.family == "real_amplitudes":
        return lib.real_amplitudes(n, entanglement=ent, reps=reps, parameter_prefix=prefix,
                                   skip_final_rotation_layer=skip)
    if spec.family == "efficient_su2":
        return lib.efficient_su2(n, entanglement=ent, reps=reps, parameter_prefix=prefix,
                                 skip_final_rotation_layer=skip)
    if spec.family == "n_local":
        return lib.n_local(n, list(spec.rotation_blocks), list(spec.entanglement_blocks) or [], entanglement=ent,
                           reps=reps, parameter_prefix=prefix, skip_final_rotation_layer=skip)
    if spec.family == "pauli_two_design":
        # its entangler is fixed (CZ on pairs); its first layer RY(pi/4) is part of the design
        return lib.pauli_two_design(n, reps=reps, seed=PAULI_TWO_DESIGN_SEED, parameter_prefix=prefix)
    raise ValueError(f"not a library family: {spec.family!r}")


def build_library(spec: AnsatzSpec) -> QNNCircuit:
    """The ``QNNCircuit`` of a library ansatz (or of qgen's layers behind a non-default feature map);
    what the library refuses (an unknown gate in a block, an entanglement it does not know) is one
    ``QgenError``."""
    try:
        return _build_library(spec)
    except (QiskitError, ValueError, TypeError, IndexError) as exc:
        raise QgenError(f"cannot build ansatz {spec.family} (entanglement {spec.entanglement}"
                        + (f", rotation blocks {','.join(spec.rotation_blocks)}, entanglement blocks "
                           f"{','.join(spec.entanglement_blocks) or 'none'}" if spec.family == "n_local" else "")
                        + f"): {exc}") from None


def _build_library(spec: AnsatzSpec) -> QNNCircuit:
    n = spec.n_qubits
    x = ParameterVector("x", n)
    qc = QuantumCircuit(n, name=circuit_name(spec))
    qc.compose(feature_map(spec, x), inplace=True)
    if spec.feature_map == "reupload" and spec.family != "pauli_two_design":
        for layer in range(spec.layers):
            if layer:
                qc.compose(feature_map(spec, x), inplace=True)
            last = layer == spec.layers - 1
            qc.compose(ansatz_block(spec, 1, f"w{layer}", final_rotation=last), inplace=True)
    else:
        qc.compose(ansatz_block(spec, spec.layers, "w"), inplace=True)
    inputs = tuple(x)
    weights = tuple(p for p in qc.parameters if p not in set(inputs))
    observables = (tuple(parse_observable(o) for o in spec.observables) if spec.observables
                   else readout_observables(n, spec.readout))
    return QNNCircuit(qc, inputs, weights, observables, qc.name)


def circuit_name(spec: AnsatzSpec) -> str:
    """Names the circuits/ folder and the backends' transpile cache: it must differ whenever the
    circuit or its readouts do (a short digest of the blocks and observables keeps it readable)."""
    parts = [spec.family, spec.feature_map + (f"{spec.feature_reps}" if "feature" in spec.feature_map else ""),
             spec.entanglement, f"q{spec.n_qubits}", f"l{spec.layers}"]
    extra = "|".join(spec.rotation_blocks + ("/",) + spec.entanglement_blocks + ("/",) + spec.observables
                     + (spec.readout,))
    return "_".join(parts) + "_" + hashlib.sha256(extra.encode()).hexdigest()[:8]


def describe(spec: AnsatzSpec) -> str:
    """One phrase for people (the model card): what the circuit is, without building it."""
    if spec.family == "custom":
        return (f"a circuit of the user's own on {spec.n_qubits} qubits ({len(spec.inputs)} input parameters; QPY "
                "in the model's configuration and circuit/logical.qpy)")
    encoding = {"angle": "RY angle encoding", "reupload": "RY angle encoding re-uploaded before every layer",
                "z_feature_map": f"z_feature_map (reps {spec.feature_reps})",
                "zz_feature_map": f"zz_feature_map (reps {spec.feature_reps}, {spec.entanglement})"}[spec.feature_map]
    body = ("qgen's RZ·RY layers with a " + spec.entanglement + " CNOT entangler" if spec.family == "qgen"
            else f"{spec.family}" + (f" ({', '.join(spec.rotation_blocks)} rotations, "
                                     f"{', '.join(spec.entanglement_blocks) or 'no'} entanglers)"
                                     if spec.family == "n_local" else "")
            + ("" if spec.family == "pauli_two_design" else f", {spec.entanglement} entanglement"))
    return f"{encoding}, then {body}, {spec.layers} rep(s)"
