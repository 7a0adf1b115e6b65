"""One rule for every seed qgen takes: a whole number from 0 to 2**32 - 1.

Seeds reach numpy (``default_rng`` refuses negatives), torch (``manual_seed``; the trainer also
seeds ``seed + 1`` .. ``seed + 3``), Aer (uint32) and qgen's own derived seeds. A seed outside what
all of them take failed deep inside one of them, as a traceback, after data had loaded; this range
is accepted by every one of them, so it is checked once, where the seed enters: an option, a
config.toml, a model folder's config.json or an experiment file.
"""

from __future__ import annotations

from qgen.errors import QgenError

MAX_SEED = 2**32 - 1


def check_seed(seed: object, where: str) -> int:
    """``seed`` if it is a whole number in [0, MAX_SEED]; else one QgenError naming ``where``."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise QgenError(f"{where} must be a whole number from 0 to {MAX_SEED}, got {seed!r}")
    return seed
