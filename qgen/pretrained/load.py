"""``from_pretrained(DIR)``: rebuild a model from its folder and load its weights, without the run.

Only JSON (config.json) and safetensors (model.safetensors) are read; no pickle is ever executed, so
a folder from anyone is safe to load. The circuit is rebuilt from its spec and prepared for the
chosen backend (the one it was trained on unless another is named), as training did.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from qgen.backends.registry import load_backend
from qgen.diffusion.objectives import EpsModel
from qgen.diffusion.schedulers import Scheduler
from qgen.draw import SampleRequest, check_finite, draw_samples
from qgen.errors import QgenError
from qgen.memory import check_sampling_memory
from qgen.models.build import build_model, state_mismatch_text
from qgen.noise.sources import ClassicalNoise
from qgen.pretrained.folder_config import FolderConfig, read_folder_config
from qgen.rundir.layout import ModelFolder


@dataclass
class PretrainedModel:
    """A loaded model folder: its config, the model (eval mode, weights loaded) and its backend."""

    path: Path
    config: FolderConfig
    model: torch.nn.Module
    backend: object  # qgen.backends.base.QuantumBackend

    @property
    def channels(self) -> int:
        return self.config.channels

    @property
    def step(self) -> int | None:
        return self.config.weights.get("step")

    @property
    def weights(self) -> str:
        """Which of the run's weights the folder holds (ema, or best: the EMA weights of the best validation FLD)."""
        return self.config.weights.get("source", "ema")

    def eps_model(self, scheduler) -> torch.nn.Module:
        """The model as samplers see it: an ε-predictor on ``scheduler``'s noise levels."""
        return EpsModel(self.model, self.config.diffusion.objective(), scheduler.diffusion.alphas_cumprod)

    def draw(self, req: SampleRequest, *, show_progress: bool = False) -> Drawn:
        """``req``'s images with classical noise seeded by ``req.seed``, on the device the model is on:
        the one path of ``sample`` and of ``qgen sample --model``. A backend that submits hardware jobs
        is refused (they are journaled in a run directory, which a model folder does not have)."""
        cfg = self.config
        if self.backend.spends_shots and cfg.model.kind == "quantum":
            raise QgenError(f"backend {self.backend.spec.name} submits hardware jobs, which are journaled in a run "
                            "directory; sample the run with --run, or choose a simulator with --backend")
        req.validate(cfg.diffusion.T)
        check_sampling_memory(cfg.model, cfg.channels, req.n, req.batch_size, cfg.diffusion.T)
        scheduler = req.make_scheduler(cfg.diffusion.make_schedule())
        noise = ClassicalNoise(req.seed)
        images = draw_samples(self.eps_model(scheduler), scheduler, self.model.image_shape, noise, req, show_progress)
        check_finite(images, {"weights": self.weights, "step": self.step}, self.path)
        return Drawn(images, scheduler, noise)

    def sample(self, n: int = 16, *, sampler: str = "ddim", steps: int = 50, eta: float = 0.0, seed: int = 0,
               batch_size: int = 64) -> torch.Tensor:
        """``n`` images in [-1, 1], shape ``(n, *model.image_shape)``, with classical noise seeded by ``seed``:
        the same numbers ``qgen sample --model`` writes for the same options."""
        req = SampleRequest(n=n, sampler=sampler, steps=steps, eta=eta, seed=seed, batch_size=batch_size)
        return self.draw(req).images


@dataclass(frozen=True)
class Drawn:
    """A drawn sample set, with the scheduler and noise source that drew it (for its metadata)."""

    images: torch.Tensor
    scheduler: Scheduler
    noise: ClassicalNoise


def from_pretrained(path: str | Path, *, backend: str | None = None, backends_file: Path | None = None,
                    local: bool = False, device: str | torch.device = "cpu") -> PretrainedModel:
    """Load the model folder at ``path`` (written by ``qgen export``).

    ``backend``: a name from backends.toml for the quantum layer (default: the one it was trained on).
    ``device``: where the weights are loaded (safetensors maps them there directly).
    """
    folder = ModelFolder(Path(path))
    if not folder.path.is_dir():
        raise QgenError(f"no model folder at {folder.path} (make one with qgen export --run RUN --out DIR)")
    cfg = read_folder_config(folder.config_path)
    tensors = read_weights(folder)
    try:
        quantum = load_backend(backend or cfg.backend, backends_file, local=local)
    except QgenError as exc:
        if backend is not None:
            raise
        # the name came from the folder, not from the user: say where, and how to choose another
        raise QgenError(f"{folder.config_path} names backend {cfg.backend!r}, which cannot be loaded here "
                        f"({exc}); pass --backend NAME to sample it with another") from None
    model = build_model(cfg.model, cfg.channels, cfg.seed, quantum)
    load_weights(model, tensors, folder)
    model.to(device).eval()
    return PretrainedModel(folder.path, cfg, model, quantum)


def read_weights(folder: ModelFolder) -> dict[str, torch.Tensor]:
    """The folder's tensors, by safetensors alone (its format holds tensors and a JSON header, no code)."""
    if not folder.weights_path.is_file():
        raise QgenError(f"{folder.path} has no {folder.weights_path.name}: not a complete model folder")
    try:
        return load_file(folder.weights_path, device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise QgenError(f"cannot read {folder.weights_path}: {exc}") from None


def load_weights(model: torch.nn.Module, tensors: dict, folder: ModelFolder) -> None:
    mismatch = state_mismatch_text(model.state_dict(), tensors)
    if mismatch:
        raise QgenError(f"{folder.weights_path} does not fit the model its {folder.config_path.name} describes: "
                        f"{mismatch}")
    model.load_state_dict(tensors)
