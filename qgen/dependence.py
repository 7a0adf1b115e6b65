"""How much do a trained model's images depend on its bottleneck's middle map? (``qgen evaluate --ablate``)

The run is sampled again with the request of the samples being evaluated (sampler, steps, eta, seed,
batch size, weights: the same x_T and per-step noise), once as trained and once under each ablation
of ``qgen.models.ablation``, and each set is scored by FLD against the same reference images. The
ratios ablated / as trained are the dependence:

* removal (mean, shuffle over all rows): does the image need the middle at all?
* content (per-site mean and shuffle across images): how much of what makes *each* image itself
  passes through the middle? For a global design (one row per image) content is removal.

Everything is drawn on the exact backend with classical noise (seeded like the request), whatever
the samples used: an ablation is a question about the trained function, and on a backend that
spends shots it would cost five more sampling runs.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Callable

import torch

from qgen.diffusion.objectives import EpsModel
from qgen.draw import SampleRequest, draw_samples
from qgen.models.ablation import ABLATIONS, CONTENT, REMOVAL, ablated, bottlenecks
from qgen.noise.sources import ClassicalNoise
from qgen.rundir import RunDir
from qgen.trained_model import load_trained_model

ABLATION_BACKEND = "statevector"


def dependence_ratios(draw: Callable[[str | None], torch.Tensor], score: Callable[[torch.Tensor], float],
                      *, global_design: bool) -> dict:
    """FLD as trained and under each ablation, and their ratios. ``draw(None)`` samples as trained,
    ``draw(mode)`` under an ablation; ``score`` is the FLD of a sample set."""
    reference = score(draw(None))
    out: dict = {"fld": reference}
    for mode in REMOVAL + (() if global_design else CONTENT):
        fld = score(draw(mode))
        out[mode] = {"fld": fld, "ratio": fld / reference if reference > 0 else None}
    if global_design:  # one row per image: the per-site ablations are the removal ones
        out.update({c: dict(out[r], same_as=r) for c, r in zip(CONTENT, REMOVAL)})
    return out


def summary(block: dict) -> str:
    """One line: the four ratios, as ``qgen evaluate`` prints them."""
    def ratio(mode):
        value = block[mode]["ratio"]
        return "n/a" if value is None else f"{value:.2f}x"

    return (f"removal {ratio('removal_mean')} (mean) / {ratio('removal_shuffle')} (shuffle), "
            f"content {ratio('content_mean')} (mean) / {ratio('content_shuffle')} (shuffle)")


def measure_run_dependence(run: RunDir | str | os.PathLike, request: dict, score: Callable[[torch.Tensor], float],
                           backends_file=None, as_trained: tuple[torch.Tensor, int] | None = None) -> dict | None:
    """The dependence block of a run, for the sampling ``request`` (a ``SampleRequest`` as a dict,
    from the samples' metadata); None for a model without a bottleneck block. ``as_trained``: the
    samples themselves and the checkpoint step that drew them, when they were drawn exactly as the
    ablations will be (exact backend, classical noise): used instead of drawing them again if the
    run's weights are still those of that step."""
    run = RunDir.resolve(run)  # a RunDir as it is (qgen evaluate hands its own down); a path found once
    known = {k: v for k, v in request.items() if k in SampleRequest.__dataclass_fields__}
    req = replace(SampleRequest(**known), noise="classical", backend=ABLATION_BACKEND, shot_budget=None,
                  reuse_noise=False)
    cfg, backend, model, ckpt = load_trained_model(run, ABLATION_BACKEND, req.weights, backends_file)
    if as_trained is not None and as_trained[1] != ckpt["step"]:
        as_trained = None  # trained further since: the file is not what these weights draw
    try:
        blocks = bottlenecks(model)
        if not blocks:
            return None
        scheduler = req.make_scheduler(cfg.diffusion.make_schedule())
        eps_model = EpsModel(model, cfg.diffusion.objective(), scheduler.diffusion.alphas_cumprod)

        def draw(mode: str | None) -> torch.Tensor:
            noise = ClassicalNoise(req.seed)  # fresh each time: the same x_T and per-step noise
            with torch.no_grad():
                if mode is None:
                    if as_trained is not None:
                        return as_trained[0]
                    return draw_samples(eps_model, scheduler, model.image_shape, noise, req)
                with ablated(model, mode, seed=req.seed):
                    return draw_samples(eps_model, scheduler, model.image_shape, noise, req)

        sites = blocks[0].sites()
        block = dependence_ratios(draw, score, global_design=sites == 1)
    finally:
        backend.close()
    return {"design": cfg.model.bottleneck, "middle": cfg.model.kind, "sites_per_image": sites,
            "backend": ABLATION_BACKEND, "noise": "classical", "n": req.n, "sampler": req.sampler,
            "steps": scheduler.model_calls(), "seed": req.seed, "batch_size": req.batch_size,
            "weights": ckpt["weights"], "reference": "the samples evaluated" if as_trained is not None else
            "drawn again on the exact backend", "modes": list(ABLATIONS), **block}
