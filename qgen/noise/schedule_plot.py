"""``schedule.png``: betas, alpha_bar, log-SNR and the quantum weight lam(t) on one figure."""

from __future__ import annotations

from pathlib import Path

import torch
from matplotlib.figure import Figure  # Figure + Agg canvas: no pyplot global state, no display

from qgen.diffusion.schedules import NoiseMixing, NoiseSchedule


def plot_schedule(schedule: NoiseSchedule, mixing: NoiseMixing | None, path: str | Path,
                  compare: tuple[NoiseSchedule, ...] = ()) -> Path:
    """Write the figure to ``path`` (headless Agg backend); ``compare`` adds reference schedules."""
    path = Path(path)
    fig = Figure(figsize=(10, 7), layout="constrained")
    ax_beta, ax_abar, ax_snr, ax_lam = fig.subplots(2, 2).ravel()
    for sched, style in [(schedule, "-")] + [(c, "--") for c in compare]:
        t = torch.arange(sched.T)
        abar = sched.alphas_cumprod
        label = f"{sched.name}"
        ax_beta.plot(t, sched.betas, style, label=label)
        ax_abar.plot(t, abar, style, label=label)
        ax_snr.plot(t, torch.log(abar / (1 - abar)), style, label=label)
    ax_beta.set(title="beta_t", yscale="log", xlabel="t")
    ax_abar.set(title="alpha_bar_t", xlabel="t")
    ax_snr.set(title="log SNR(t) = log(abar / (1 - abar))", xlabel="t")
    for ax in (ax_beta, ax_abar, ax_snr):
        ax.legend()
    if mixing is not None:
        t = torch.arange(mixing.T)
        ax_lam.plot(t, mixing.lam(t), color="tab:purple")
    ax_lam.set(title="quantum weight lambda(t)", xlabel="t", ylim=(-0.05, 1.05))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path
