"""Memory a command will need, estimated before it starts, against what this machine has.

Sizes that cannot be allocated (``--widths 800000,8,8``: 30 trillion parameters; ``--timesteps
10**12``; ``sample --n 10**9``) used to fail as a MemoryError traceback -- after the data had
loaded, or after a run directory was made. Each estimate here is cheap and errs high: the U-Net's
parameters are counted exactly (built on torch's ``meta`` device, which allocates nothing), the
rest are per-element costs of the tensors each phase keeps. The refusal says what would fit.
"""

from __future__ import annotations

import os

from qgen.errors import QgenError

FLOAT = 4            # float32 bytes: weights, activations, images
SCHEDULE_ARRAYS = 16  # float64 arrays per timestep that a schedule and its samplers keep (betas, ᾱ, ...)
#: training keeps weights, gradients, Adam's two moments and the EMA shadow: 5 copies of the parameters
TRAIN_PARAMETER_COPIES = 5
#: activations per pixel and channel that one image keeps for the backward pass (several tensors per
#: ResBlock); sampling keeps no graph, a quarter of that
TRAIN_ACTIVATIONS_PER_UNIT, SAMPLE_ACTIVATIONS_PER_UNIT = 24, 6
#: images a sample set holds per sample: float32 samples, a uint8 copy, the batches before concatenation
SAMPLE_COPIES = 3
PIXELS = (28 * 28, 14 * 14, 7 * 7)  # the U-Net's three levels


def physical_memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not exposed on this platform: cannot check
        return None


def size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if n < 1024 or unit == "EiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def check_fits(need: int, what: str, advice: str, limit: int | None = None) -> None:
    """Refuse ``what`` if ``need`` bytes exceed ``limit`` (default: physical memory)."""
    limit = physical_memory_bytes() if limit is None else limit
    if limit is not None and need > limit:
        raise QgenError(f"{what} needs about {size(need)} of memory but this machine has {size(limit)}; {advice}")


def schedule_bytes(T: int) -> int:
    return T * 8 * SCHEDULE_ARRAYS


def unet_parameters(model_cfg, channels: int = 3) -> int:
    """The U-Net's parameter count, exactly, without allocating it (the gate is small and left out)."""
    # deferred: qgen.backends imports this module (aer_memory) and stays without torch, ~3.5 s of import
    import torch

    from qgen.models.unet import UNet

    with torch.device("meta"):
        return sum(p.numel() for p in UNet(model_cfg, channels, None).parameters())


def activation_units(model_cfg) -> int:
    """Pixels x channels of one image's feature maps at the three levels."""
    return sum(p * w for p, w in zip(PIXELS, model_cfg.widths))


def check_training_memory(model_cfg, batch_size: int, T: int, limit: int | None = None) -> None:
    params = unet_parameters(model_cfg)
    fixed = params * FLOAT * TRAIN_PARAMETER_COPIES + schedule_bytes(T)
    per_image = activation_units(model_cfg) * TRAIN_ACTIVATIONS_PER_UNIT * FLOAT
    limit = physical_memory_bytes() if limit is None else limit
    if limit is not None and fixed > limit:
        raise QgenError(f"the model (widths {','.join(map(str, model_cfg.widths))}: {params:,} parameters) needs "
                        f"about {size(fixed)} of memory to train but this machine has {size(limit)}; use smaller "
                        "--widths")
    fits = (limit - fixed) // per_image if limit is not None else batch_size
    check_fits(fixed + batch_size * per_image, f"training with --batch-size {batch_size}",
               f"at most --batch-size {max(fits, 0)} fits with these --widths", limit)


def check_sampling_memory(model_cfg, channels: int, n: int, batch_size: int, T: int,
                          limit: int | None = None) -> None:
    per_sample = channels * PIXELS[0] * FLOAT * SAMPLE_COPIES
    batch = min(n, batch_size)
    working = (unet_parameters(model_cfg, channels) * FLOAT + schedule_bytes(T)
               + batch * activation_units(model_cfg) * SAMPLE_ACTIVATIONS_PER_UNIT * FLOAT)
    limit = physical_memory_bytes() if limit is None else limit
    if limit is not None and working > limit:
        check_fits(working, f"sampling in batches of {batch}", "use a smaller --batch-size", limit)
    fits = (limit - working) // per_sample if limit is not None else n
    check_fits(working + n * per_sample, f"sampling --n {n}",
               f"at most --n {max(fits, 0)} fits in one command (run it several times with other --seed)", limit)
