"""Reproducible, never-repeating simulator seeds.

Aer's ``SamplerV2(seed=s)`` returns identical bits on every call with the same ``s``; reusing a seed
would silently duplicate "random" noise. Seed ``i`` of a chain is the ``i``-th child of one root
``SeedSequence`` (spawn key ``(i,)``), so a chain is reproducible from ``(root, index)`` alone and can
resume in a later process (the entropy pool stores both) without ever handing out a seed twice.
"""

from __future__ import annotations

import numpy as np


class SeedChain:
    """Hands out seed ``start``, ``start+1``, ... of the chain rooted at ``root``; records them."""

    def __init__(self, root: int | None = None, start: int = 0) -> None:
        # root=None draws fresh OS entropy, but we keep it so the run can still be reproduced.
        self.root: int = int(np.random.SeedSequence(root).entropy)
        self.index: int = start
        self.issued: list[int] = []

    @staticmethod
    def seed_at(root: int, index: int) -> int:
        """The ``index``-th seed of the chain (a uint32, what Aer accepts as ``seed_simulator``)."""
        child = np.random.SeedSequence(root, spawn_key=(index,))
        return int(child.generate_state(1, dtype=np.uint32)[0])

    def next(self) -> int:
        seed = self.seed_at(self.root, self.index)
        self.index += 1
        self.issued.append(seed)
        return seed

    def state(self) -> dict:
        return {"root": str(self.root), "next_index": self.index}
