"""``qgen export``: a run directory -> a model folder (safetensors, config.json, circuit, model card).

The folder is staged beside its destination (a staging folder of its own, the destination locked)
and renamed into place, so a failed export leaves nothing behind, two exports to one destination
never mix, and an existing non-empty folder is never overwritten. The checkpoint read here is
the run's own; the folder written holds no pickle.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

from qiskit import qpy
from safetensors.torch import save_file

from qgen.backends.artifacts import write_prepared_artifacts
from qgen.backends.registry import backend_for, load_backend
from qgen.backends.spec import BackendSpec
from qgen.circuits import build_ansatz
from qgen.commands import ExportCommand
from qgen.config import RunConfig
from qgen.errors import QgenError
from qgen.fileio import atomic_write_text, current_umask, read_json
from qgen.models.build import build_model, load_model_state
from qgen.pretrained.card import model_card
from qgen.pretrained.folder_config import FORMAT_VERSION, MODEL_TYPE, FolderConfig
from qgen.rundir import ModelFolder, RunDir, default_runs_root
from qgen.tomlconfig import to_dict
from qgen.version import __version__


def export_run(command: ExportCommand) -> Path:
    """Write the model folder of ``command.run`` to ``command.out``; returns its path.

    Everything is read and checked first (config, manifest, checkpoint, and that the checkpoint fits
    the model config.toml describes, as ``qgen sample`` checks), then the destination is locked and
    written through a staging folder of its own."""
    weights, backends_file, local = command.weights, command.backends_file, command.local
    found = RunDir.resolve(command.run, command.runs_dir or default_runs_root())
    folder = ModelFolder(Path(command.out))
    _refuse_non_empty(folder)
    # no run lock: export only reads, and checkpoints and the manifest are replaced atomically
    cfg, manifest = found.config(), found.manifest()
    if not found.has_checkpoint(weights):
        raise QgenError(f"run {found.path} has no {found.checkpoint_path(weights).name} to export"
                        + (" (it was never evaluated in training; use --weights ema)" if weights == "best" else ""))
    ckpt = found.load_checkpoint(weights)
    check_fits_config(cfg, ckpt, found.checkpoint_path(weights))
    folder_cfg = folder_config(cfg, manifest, ckpt, weights, found)
    with folder.writing() as staging:
        _refuse_non_empty(folder)  # again, under the lock: another export may have finished meanwhile
        try:
            circuit = _write_circuit(cfg, manifest, staging, backends_file, local)
            folder_cfg = _with_circuit(folder_cfg, circuit)
            _write_weights(ckpt["model"], staging, weights, ckpt["step"])
            atomic_write_text(staging.config_path, folder_cfg.to_json())
            model_card(folder_cfg, title=found.path.name, folder_name=folder.path.name).save(staging.card_path)
            folder.publish(staging)
        except OSError as exc:
            raise QgenError(f"cannot write the model folder {folder.path}: {exc.strerror or exc}") from None
    return folder.path


def _refuse_non_empty(folder: ModelFolder) -> None:
    if folder.path.exists() and (not folder.path.is_dir() or any(folder.path.iterdir())):
        raise folder.exists_error()


def check_fits_config(cfg: RunConfig, ckpt: dict, source: Path) -> None:
    """The checkpoint's tensors fit the model config.toml describes -- what ``qgen sample --run``
    checks when it loads them -- so a folder that could not be loaded is never written. The model
    is built on the exact simulator: parameter shapes do not depend on the backend, and a hardware
    run's backend may need credentials export does not."""
    exact = backend_for(BackendSpec(name="statevector", kind="statevector"))
    load_model_state(build_model(cfg.model, ckpt["channels"], cfg.train.seed, exact), ckpt["model"], source)


def folder_config(cfg: RunConfig, manifest: dict, ckpt: dict, weights: str, run: RunDir) -> FolderConfig:
    """config.json's content: the rebuild recipe from config.toml, the rest from the manifest and metrics."""
    source = manifest.get("data_source") or {}
    train = to_dict(cfg.train)
    return FolderConfig(
        model_type=MODEL_TYPE, format_version=FORMAT_VERSION, qgen_version=__version__,
        model=cfg.model, channels=int(ckpt["channels"]), diffusion=cfg.diffusion, backend=cfg.backend,
        seed=cfg.train.seed,
        weights={"file": ModelFolder(Path(".")).weights_path.name, "source": weights, "step": int(ckpt["step"]),
                 **({"validation_fld": float(ckpt["validation_fld"])} if "validation_fld" in ckpt else {})},
        training={**train, "steps_done": manifest.get("steps_done"), "steps_planned": cfg.train.steps,
                  "status": manifest.get("status"), "parameters": manifest.get("parameters"),
                  "simulation": (manifest.get("backend") or {}).get("simulation_method"), "run": run.path.name},
        data={"dataset": cfg.data.dataset, "classes": list(cfg.data.classes) if cfg.data.classes else None,
              "n_train": cfg.data.n_train, "seed": cfg.data.seed, "split": cfg.data.split,
              "n_train_images": manifest.get("n_train_images"), "source_kind": source.get("kind"),
              "source_url": source.get("url"), "source_sha256": source.get("sha256"),
              "indices": source.get("indices")},
        metrics={"test": _test_metrics(run), "validation": run.quality_log().rows()},
    )


def _test_metrics(run: RunDir) -> dict | None:
    """The run's ``qgen evaluate`` result (metrics.json), the numbers the card reports."""
    if not run.metrics_path.is_file():
        return None
    metrics = read_json(run.metrics_path)
    key = next((k for k in ("fld", "fd_small_cnn") if k in metrics), None)
    if key is None:
        return None
    return {"metric": key, "value": metrics[key].get("value"), "n_samples": metrics[key].get("n_samples"),
            "n_reference": metrics[key].get("n_reference"), "samples_file": metrics.get("samples_file"),
            "kid": metrics.get("kid"), "precision_recall": metrics.get("precision_recall"),
            "baselines": metrics.get("baselines", {}), "heldout_sizes": metrics.get("heldout_sizes"),
            "dependence": metrics.get("dependence")}


def _write_weights(state: dict, folder: ModelFolder, weights: str, step: int) -> None:
    tensors = {key: value.detach().cpu().contiguous() for key, value in state.items()}
    save_file(tensors, str(folder.weights_path), metadata={"format": "pt", "qgen_weights": weights, "step": str(step)})
    # safetensors creates its file 0600; every other file qgen writes is 0666 & ~umask (shared folders)
    folder.weights_path.chmod(0o666 & ~current_umask())


def _write_circuit(cfg: RunConfig, manifest: dict, folder: ModelFolder, backends_file: Path | None,
                   local: bool) -> dict:
    """The transpiled circuit the run used (copied from the circuits/ folder its manifest names, or
    transpiled again for the run's backend when that folder is gone); its stats for config.json."""
    if cfg.model.kind != "quantum":
        return {}
    recorded = [Path(p) for p in manifest.get("circuits") or [] if (Path(p) / "circuit.qpy").is_file()]
    if recorded:
        shutil.copytree(recorded[0], folder.circuit_dir)
    else:
        _transpile_again(cfg, folder, backends_file, local)
    _write_logical_circuit(cfg, folder.circuit_dir / LOGICAL_QPY)
    stats = read_json(folder.circuit_dir / "stats.json")
    keep = ("name", "num_qubits", "num_parameters", "depth", "two_qubit_depth", "count_ops", "layout",
            "estimated_success_probability", "optimization_level", "seed_transpiler")
    # the QPY of a user circuit is in config.json's model block already: not a second time here
    ansatz = {k: v for k, v in to_dict(cfg.model.ansatz).items() if k != "qpy"}
    return {"ansatz": ansatz, "transpiled_for": stats.get("backend"),
            **{k: stats.get(k) for k in keep},
            "files": {kind: f"{folder.circuit_dir.name}/{name}" for kind, name in
                      (("qpy", "circuit.qpy"), ("qasm3", "circuit.qasm3"), ("stats", "stats.json"),
                       ("logical_qpy", LOGICAL_QPY))}}


LOGICAL_QPY = "logical.qpy"  # the circuit before transpilation, with its input/weight parameter names


def _write_logical_circuit(cfg: RunConfig, path: Path) -> None:
    """The untranspiled circuit: what a user loads to reuse the trained circuit elsewhere (the
    weights are ``gate.middle.qnn.weight`` in model.safetensors, in ``circuit.parameters`` order
    minus the inputs)."""
    with path.open("wb") as fh:
        qpy.dump(build_ansatz(cfg.model.ansatz).circuit, fh)


def _transpile_again(cfg: RunConfig, folder: ModelFolder, backends_file: Path | None, local: bool) -> None:
    backend = load_backend(cfg.backend, backends_file, local=local)
    with tempfile.TemporaryDirectory(dir=folder.path) as tmp:
        written = write_prepared_artifacts(backend, backend.prepare(build_ansatz(cfg.model.ansatz)), Path(tmp))
        shutil.move(str(written), folder.circuit_dir)


def _with_circuit(cfg: FolderConfig, circuit: dict) -> FolderConfig:
    return replace(cfg, circuit=circuit)
