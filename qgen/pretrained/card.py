"""The model card (README.md) of a model folder, through ``huggingface_hub.ModelCard``.

It says what a reader needs before trusting the samples: the data (source and N), the training
(steps, recipe, backend), the metrics next to their real-data floor and memorizer baselines, and
the caveats that hold for every qgen model (few images, a feature space of qgen's own, simulation).
"""

from __future__ import annotations

from huggingface_hub import ModelCard, ModelCardData

from qgen.circuits.library import describe
from qgen.dependence import summary
from qgen.pretrained.folder_config import FolderConfig

TAGS = ["diffusion", "unconditional-image-generation", "quantum-machine-learning", "qiskit",
        "hybrid-quantum-classical", "qgen"]


def model_card(cfg: FolderConfig, title: str, folder_name: str):
    """A ``huggingface_hub.ModelCard`` (YAML metadata + markdown) for ``cfg``."""
    dataset = cfg.data.get("dataset", "")
    data = ModelCardData(library_name="qgen", tags=TAGS, pipeline_tag="unconditional-image-generation",
                         datasets=[dataset] if dataset and "/" not in dataset and "." not in dataset else None)
    sections = [f"# {title}", _summary(cfg), "## Training data", _data(cfg), "## Training", _training(cfg),
                "## Metrics", _metrics(cfg), "## Use", _use(folder_name), "## Caveats", _caveats(cfg)]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n\n".join(sections) + "\n")


DESIGN_TEXT = {
    "channel_gate": "gated per channel by a global code (the seed paper's placement: the features pass on, only "
                    "re-weighted)",
    "site": "replaced by a per-site map: at each of the 49 sites the features are compressed to the circuit's input "
            "angles and its readouts expanded back (nothing at 7 px passes around the map)",
    "patch": "replaced by a per-patch map: at each of 16 2×2 patches the features are compressed to the circuit's "
             "input angles and its readouts expanded back (nothing at 7 px passes around the map)",
    "film": "modulated by a global code: every normalised feature is scaled and shifted by what the map hands on",
}


def _summary(cfg: FolderConfig) -> str:
    m, d = cfg.model, cfg.diffusion
    readout = "Z and neighbour ZZ readouts" if m.readout == "zz" else "Z readouts"
    entangler = "no entangling gates (the separable control)" if m.entanglement == "none" else \
        f"a {m.entanglement} CNOT entangler"
    middle = {"quantum": f"a variational circuit of {m.qubits} qubits, {m.layers} layer(s) and {entangler} (a Qiskit "
                         f"EstimatorQNN in a TorchConnector, {readout})",
              "classical": f"a classical map with exactly the parameters of a {m.qubits}-qubit, {m.layers}-layer "
                           "circuit (the parameter-matched control)", **_circuit_middle(m)}.get(m.kind)
    gate = (f"{DESIGN_TEXT[m.bottleneck]}, the map being {middle}" if middle
            else "without a bottleneck block (the plain control)")
    skips = {2: "both skip connections", 1: f"only the {m.skips[0] if m.skips else ''}-px skip connection",
             0: "no skip connections"}[len(m.skips)]
    if m.skip_channels:
        skips += f" narrowed to {m.skip_channels} channels"
    if m.skip_drop:
        skips += f", zeroed for {m.skip_drop:.0%} of the training images"
    return (f"A qgen diffusion model for {cfg.channels}-channel 28×28 images: a U-Net (channels "
            f"{', '.join(map(str, m.widths))} at 28, 14 and 7 px, {skips}) whose 7×7 bottleneck is {gate}. It predicts "
            f"{'v' if d.prediction == 'v' else 'ε'} on a {d.schedule} schedule with T = {d.T}. The weights are the "
            f"{cfg.weights.get('source', 'ema').upper()} weights at step {cfg.weights.get('step')}.")


def _circuit_middle(m) -> dict:
    """The middle's phrase for a circuit other than the original (a library ansatz, a user circuit)."""
    spec = m.ansatz
    if spec.is_original:
        return {}
    readouts = f"{spec.num_readouts} readouts ({', '.join(spec.observables)})" if spec.observables else \
        ("Z and neighbour ZZ readouts" if m.readout == "zz" else "Z readouts")
    circuit = f"{describe(spec)}, {spec.num_weights} trainable angles"
    return {"quantum": f"a variational circuit: {circuit} (a Qiskit EstimatorQNN in a TorchConnector, {readouts})",
            "classical": f"a classical map with exactly the parameters of that circuit ({circuit}; the "
                         "parameter-matched control)"}


def _data(cfg: FolderConfig) -> str:
    data = cfg.data
    classes = data.get("classes")
    lines = [f"- dataset: {data.get('dataset')}" + (f", classes {', '.join(map(str, classes))}" if classes else ""),
             f"- training images: N = {data.get('n_train_images')} (seeded subset, seed {data.get('seed')})",
             f"- images came from: {data.get('source_kind', 'unknown')}"
             + (f" (sha256 {data['source_sha256'][:16]}…)" if data.get("source_sha256") else "")]
    return "\n".join(lines)


def _training(cfg: FolderConfig) -> str:
    t = cfg.training
    backend = cfg.circuit.get("transpiled_for") or cfg.backend
    lines = [f"- steps: {t.get('steps_done')} of {t.get('steps_planned')} planned (run status: {t.get('status')})",
             f"- batch {t.get('batch_size')}, learning rate {t.get('lr')} ({t.get('lr_schedule')}, "
             f"{t.get('lr_warmup')} warm-up steps), EMA decay {t.get('ema_decay')} (power {t.get('ema_power')}), "
             f"forward noise: {t.get('noise')}",
             f"- backend: {cfg.backend}" + (f" ({t['simulation']})" if t.get("simulation") else "")]
    if cfg.model.kind == "quantum":
        lines.append(f"- circuit: {cfg.model.inputs} input angles and {cfg.model.circuit_weights} "
                     f"trainable ones; transpiled for {backend}: "
                     f"depth {cfg.circuit.get('depth')}, two-qubit depth {cfg.circuit.get('two_qubit_depth')} "
                     "(`circuit/circuit.qpy`, `circuit/circuit.qasm3`, `circuit/stats.json`)")
    return "\n".join(lines)


def _metrics(cfg: FolderConfig) -> str:
    test, validation = cfg.metrics.get("test"), cfg.metrics.get("validation") or []
    out = []
    if test and "fld" not in test.get("baselines", {}):
        out.append(f"Test set: {test.get('baselines', {}).get('reason', 'no FLD')}.")
    elif test:
        b = test["baselines"]
        out.append(f"Test set (`qgen evaluate`, {test['n_samples']} samples of `{test.get('samples_file')}` against "
                   f"{test['n_reference']} held-out test images):\n\n"
                   "| metric | value |\n|---|---|\n"
                   f"| FLD | {b['fld']:.2f} |\n"
                   f"| real-data floor (same sizes) | {b['floor']['mean']:.2f} ± {b['floor']['sd']:.2f} |\n"
                   f"| memorizer (the N training images replayed) | {b['memorizer']['mean']:.2f} ± "
                   f"{b['memorizer']['sd']:.2f} |\n"
                   f"| FLD / floor | {b['fld_over_floor']:.2f} |\n"
                   f"| FLD / memorizer | {b['fld_over_memorizer']:.2f} |\n"
                   f"| copy fraction (features) | {b['copy_fraction']:.0%} |\n"
                   f"| reading | {b['reading']} |")
    else:
        out.append("No test-set evaluation: `qgen evaluate` had not been run on this run when it was exported.")
    dependence = (test or {}).get("dependence")
    if dependence and "removal_mean" in dependence:
        out.append(f"What the images need from the bottleneck's map (`qgen evaluate --ablate`: FLD with its outputs "
                   f"replaced, over FLD as trained, {dependence['n']} samples redrawn with the same x_T): "
                   f"{summary(dependence)}. Ratios near 1 mean the images do not depend on the map; removal asks "
                   "whether they need it at all, content whether what makes each image itself passes through it.")
    if validation:
        last = validation[-1]
        best = min(validation, key=lambda r: float(r["fld"]))
        out.append(f"In training ({len(validation)} evaluations on the validation images, which also chose the best "
                   f"checkpoint): last FLD {float(last['fld']):.2f} at step {last['step']}, best {float(best['fld']):.2f} "
                   f"at step {best['step']}; floor {float(last['floor']):.2f}, memorizer {float(last['memorizer']):.2f}, "
                   f"copy fraction {float(last['copy_fraction']):.0%}.")
    return "\n\n".join(out)


def _use(folder_name: str) -> str:
    return ("```python\nimport qgen\n\n"
            f"model = qgen.from_pretrained(\"{folder_name}\")      # JSON + safetensors only, no pickle\n"
            "images = model.sample(16, sampler=\"dpm\", steps=10)   # (16, C, 28, 28) in [-1, 1]\n```\n\n"
            f"```bash\nqgen sample --model {folder_name} --sampler dpm --steps 10 --n 64 --out samples/\n```")


def _caveats(cfg: FolderConfig) -> str:
    n = cfg.data.get("n_train_images")
    lines = [
        f"- Trained on N = {n} images. With this few, a diffusion model can learn to replay its training set: read "
        "the copy fraction and the memorizer baseline, not FLD alone.",
        "- FLD is a Fréchet distance in the features of qgen's own small classifier trained on the dataset, not "
        "Inception FID; it is comparable only between qgen models scored at the same sample and reference sizes.",
        "- The in-training numbers are on the validation images that selected the best checkpoint; only the "
        "test-set numbers are an unbiased estimate.",
    ]
    if cfg.model.kind == "quantum":
        lines.append(f"- The circuit was evaluated on the `{cfg.backend}` backend. On other backends or hardware, "
                     "shot noise and device noise change its outputs and so the samples; nothing here shows that the "
                     "circuit beats the parameter-matched classical control (`--model classical`).")
    steps_done, planned = cfg.training.get("steps_done"), cfg.training.get("steps_planned")
    if steps_done is not None and planned is not None and steps_done < planned:
        lines.append(f"- Exported before training finished: step {steps_done} of {planned}.")
    return "\n".join(lines)
