"""What the denoiser predicts and how its training loss weighs the timesteps.

Two parametrizations (Salimans & Ho 2022):
  * ``eps``: the network predicts the noise ε (Ho et al. 2020);
  * ``v``: it predicts v = √ᾱ ε − √(1−ᾱ) x0, whose scale stays ~1 at every t, so neither the
    noisiest nor the cleanest steps dominate the gradient.
and two weightings of the per-timestep MSE:
  * ``uniform``: plain MSE on the prediction target;
  * ``min_snr``: min-SNR-γ (Hang et al. 2023), which caps the weight of low-noise steps (high SNR)
    at γ. Written as a weight on the target's MSE: min(SNR, γ)/SNR for ε, min(SNR, γ)/(SNR+1) for v,
    i.e. the same x0-space weighting whatever the network predicts.

Samplers always work in ε: ``to_eps`` converts a model output, so every sampler (DDPM, DDIM,
DPM-Solver++) serves both parametrizations unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from qgen.errors import QgenError

PREDICTIONS = ("eps", "v")
WEIGHTINGS = ("uniform", "min_snr")


@dataclass(frozen=True)
class Objective:
    prediction: str = "eps"
    weighting: str = "uniform"
    min_snr_gamma: float = 5.0

    def __post_init__(self) -> None:
        if self.prediction not in PREDICTIONS:
            raise QgenError(f"unknown prediction {self.prediction!r}; choose one of {', '.join(PREDICTIONS)}")
        if self.weighting not in WEIGHTINGS:
            raise QgenError(f"unknown loss weighting {self.weighting!r}; choose one of {', '.join(WEIGHTINGS)}")
        if not self.min_snr_gamma > 0:
            raise QgenError(f"min_snr_gamma must be > 0, got {self.min_snr_gamma}")

    def target(self, x0: torch.Tensor, eps: torch.Tensor, abar_t: torch.Tensor) -> torch.Tensor:
        """What the network should output for x_t = √ᾱ x0 + √(1−ᾱ) ε (``abar_t`` broadcastable to x0)."""
        if self.prediction == "eps":
            return eps
        return abar_t.sqrt() * eps - (1 - abar_t).sqrt() * x0

    def weight(self, abar_t: torch.Tensor) -> torch.Tensor:
        """Per-example weight of the target MSE, shape of ``abar_t``."""
        if self.weighting == "uniform":
            return torch.ones_like(abar_t)
        snr = abar_t / (1 - abar_t)
        capped = snr.clamp(max=self.min_snr_gamma)
        return capped / snr if self.prediction == "eps" else capped / (snr + 1)

    def loss(self, output: torch.Tensor, x0: torch.Tensor, eps: torch.Tensor, abar_t: torch.Tensor) -> torch.Tensor:
        """Weighted MSE averaged over the batch; ``abar_t`` has shape (B,)."""
        a = abar_t.view(-1, *([1] * (x0.ndim - 1))).to(x0.dtype)
        per_example = ((output - self.target(x0, eps, a)) ** 2).flatten(1).mean(dim=1)
        return (self.weight(abar_t.to(x0.dtype)) * per_example).mean()

    def to_eps(self, output: torch.Tensor, x_t: torch.Tensor, abar_t: torch.Tensor) -> torch.Tensor:
        """ε implied by a model output at x_t (``abar_t`` broadcastable to x_t)."""
        if self.prediction == "eps":
            return output
        # v = √ᾱ ε − √(1−ᾱ) x0 and x_t = √ᾱ x0 + √(1−ᾱ) ε  ⇒  ε = √ᾱ v + √(1−ᾱ) x_t
        return abar_t.sqrt() * output + (1 - abar_t).sqrt() * x_t


class EpsModel(torch.nn.Module):
    """A denoiser seen through its objective: always returns ε, whatever the network predicts.

    Samplers and schedulers call ``EpsModel(net, objective, alphas_cumprod)(x_t, t)`` and never need
    to know the parametrization; for ``eps`` it is the network itself, unchanged.
    """

    def __init__(self, net: torch.nn.Module, objective: Objective, alphas_cumprod: torch.Tensor) -> None:
        super().__init__()
        self.net = net
        self.objective = objective
        self.register_buffer("abar", alphas_cumprod.float(), persistent=False)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = self.net(x_t, t)
        if self.objective.prediction == "eps":
            return out
        a = self.abar.to(x_t.device)[t].view(-1, *([1] * (x_t.ndim - 1))).to(x_t.dtype)
        return self.objective.to_eps(out, x_t, a)
