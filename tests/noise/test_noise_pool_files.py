"""A damaged noise pool (issue #21, section 3) is one line naming the file: truncated .npz, bad
JSON, a negative or overshooting offset, a missing ``bits`` array."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qgen.errors import QgenError
from qgen.noise.pool import BITS_FILE, META_FILE, EntropyPool


@pytest.fixture
def pool_dir(tmp_path: Path) -> Path:
    """A pool holding 32 committed bits, 8 of them handed out."""
    directory = tmp_path / "pool"
    EntropyPool.open(directory, seed=3)
    meta = json.loads((directory / META_FILE).read_text())
    meta.update(bits_total=32, offset=8)
    (directory / META_FILE).write_text(json.dumps(meta))
    np.savez(directory / BITS_FILE, bits=np.arange(4, dtype=np.uint8), n_bits=np.int64(32))
    return directory


def test_a_whole_pool_opens_at_its_offset(pool_dir: Path) -> None:
    pool = EntropyPool.open(pool_dir)
    assert (pool.bits_total, pool.cursor) == (32, 8)


def _meta(pool_dir: Path, **fields) -> None:
    meta = json.loads((pool_dir / META_FILE).read_text())
    meta.update(fields)
    (pool_dir / META_FILE).write_text(json.dumps(meta))


@pytest.mark.parametrize("damage, needle", [
    (lambda d: (d / BITS_FILE).write_bytes((d / BITS_FILE).read_bytes()[:40]), "cannot read noise pool"),
    (lambda d: (d / META_FILE).write_text('{"format": '), "cannot read noise pool"),
    (lambda d: (d / META_FILE).write_text("[]"), "is not a qgen noise pool ('list')"),
    (lambda d: _meta(d, offset=-3), "offset must be a whole number >= 0, got -3"),
    (lambda d: _meta(d, offset=40), "offset 40 is past the 32 bits it holds"),
    (lambda d: _meta(d, jobs="x"), "jobs must be a list"),
    (lambda d: np.savez(d / BITS_FILE, n_bits=np.int64(32)), "no bits array"),
    (lambda d: np.savez(d / BITS_FILE, bits=np.zeros(1, np.uint8), n_bits=np.int64(32)), "shorter than the 32"),
    (lambda d: np.savez(d / BITS_FILE, bits=np.array(["a"]), n_bits=np.int64(32)), "packed uint8"),
])
def test_a_damaged_pool_is_one_line_naming_the_file(pool_dir: Path, damage, needle: str) -> None:
    damage(pool_dir)
    with pytest.raises(QgenError, match=None) as err:
        EntropyPool.open(pool_dir)
    message = str(err.value)
    assert needle in message and "\n" not in message
    assert str(pool_dir / BITS_FILE) in message or str(pool_dir / META_FILE) in message
