# Recorded once with the pre-scheduler ddpm_sample/ddim_sample (commit 1bad57f); kept for the record.
# tests/test_diffusion.py::test_new_loop_matches_recorded_outputs_of_the_old_samplers compares against it.
import torch
from qgen.diffusion.ddpm import GaussianDiffusion
from qgen.diffusion.samplers import ddim_sample, ddpm_sample
from qgen.diffusion.schedules import make_schedule
from qgen.noise.sources import ClassicalNoise

class Wobbly(torch.nn.Module):
    def forward(self, x, t):
        return 0.3 * torch.sin(3 * x) + 0.001 * t.float().view(-1, 1, 1, 1) * x.flip(-1)

out = {}
for sched in ("linear", "cosine"):
    d = GaussianDiffusion(make_schedule(sched, 40))
    shape = (2, 1, 28, 28)
    out[f"{sched}/ddpm"] = ddpm_sample(Wobbly(), d, shape, ClassicalNoise(7))
    out[f"{sched}/ddim_eta0"] = ddim_sample(Wobbly(), d, shape, ClassicalNoise(7), steps=9)
    out[f"{sched}/ddim_eta0.5"] = ddim_sample(Wobbly(), d, shape, ClassicalNoise(7), steps=9, eta=0.5)
    out[f"{sched}/ddim_full_eta1"] = ddim_sample(Wobbly(), d, shape, ClassicalNoise(7), steps=40, eta=1.0)
torch.save(out, "tests/data/sampler_reference.pt")
print({k: float(v.sum()) for k, v in out.items()})
