"""A run's trained model, rebuilt from its config.toml and one of its checkpoints.

Sampling a run and the dependence ablations of ``qgen evaluate`` load it the same way: on the
chosen backend, with what training froze kept frozen, the checkpoint read onto the CPU whatever
device wrote it and the model moved to the requested one.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from qgen.backends.registry import load_backend
from qgen.models.build import build_model, load_model_state
from qgen.rundir import RunDir
from qgen.training.freeze import freeze

logger = logging.getLogger(__name__)


def load_trained_model(run: RunDir, backend_name: str | None, weights: str, backends_file: Path | None,
                       local: bool = False, device: torch.device | str = "cpu"):
    """(config, backend, model on ``device``, checkpoint) of ``run``; ``backend_name`` None: the run's
    own backend. ``checkpoint["weights"]`` says which weights were loaded."""
    cfg = run.config()
    backend = load_backend(backend_name or cfg.backend, backends_file, local=local)
    weights = weights_to_load(run, weights)
    ckpt = run.load_checkpoint(weights)  # "ema" or "last"; read onto the CPU whatever device wrote it
    model = build_model(cfg.model, ckpt["channels"], cfg.train.seed, backend).to(device)
    freeze(model, cfg.train.freeze)  # the model as trained: what it froze is not a trainable parameter here either
    load_model_state(model, ckpt["model"], run.checkpoint_path(weights))
    model.eval()
    return cfg, backend, model, ckpt | {"weights": weights}


def weights_to_load(run: RunDir, weights: str) -> str:
    """``weights``, except that missing EMA weights (a kill while writing them) fall back to ``last``,
    said on stderr."""
    if weights == "ema" and not run.has_checkpoint("ema") and run.has_checkpoint("last"):
        logger.warning(f"qgen: {run.checkpoint_path('ema')} is missing; sampling with the last training "
                       f"weights ({run.checkpoint_path('last').name}) instead")
        return "last"
    return weights
