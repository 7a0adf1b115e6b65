"""The diffusion method, one concept per module, readable top to bottom.

  schedules.py    noise (beta) schedules: linear, cosine, shifted cosine, sigmoid; the λ(t) noise mixing
  ddpm.py         the forward process q(x_t | x_0) and the training loss
  objectives.py   what the network predicts (ε or v) and how timesteps are weighted (uniform, min-SNR-γ)
  schedulers.py   reverse-process steps, diffusers-style: DDPM and DDIM (``set_timesteps`` / ``step``)
  dpm_solver.py   few-step ODE solvers from diffusers on qgen's betas: DPM-Solver++(2M), UniPC
  samplers.py     the registry of samplers (``qgen sample --sampler``) and ``make_scheduler``
  pipeline.py     the one sampling loop that every caller uses
"""
