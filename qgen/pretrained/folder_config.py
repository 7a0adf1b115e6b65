"""``config.json`` of a model folder: everything needed to rebuild the model, and what it was trained on.

Rebuilding needs ``model`` (the U-Net and its gate, including the circuit's qubits, layers and
entangler), ``channels``, ``diffusion`` (schedule with every parameter, T, prediction target) and the
``backend`` that evaluates the circuit; ``seed`` builds the model exactly as training did before the
weights replace its initial values. The other blocks (weights, circuit, training, data, metrics)
describe the model for people and for the model card; loading checks their types, not their use.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from qgen.config import DiffusionConfig
from qgen.errors import QgenError
from qgen.models.config import ModelConfig
from qgen.seed import check_seed
from qgen.tomlconfig import from_dict, to_dict

MODEL_TYPE = "qgen-diffusion-unet"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class FolderConfig:
    model_type: str
    format_version: int
    model: ModelConfig
    channels: int
    diffusion: DiffusionConfig
    backend: str                  # the backend it was trained on (the default for sampling)
    seed: int                     # the model's build seed
    image_size: int = 28
    qgen_version: str = ""
    weights: dict = field(default_factory=dict)    # which weights (ema / best), step, file
    circuit: dict = field(default_factory=dict)    # the ansatz, its parameters, the transpiled files
    training: dict = field(default_factory=dict)   # steps done and the run's train settings
    data: dict = field(default_factory=dict)       # dataset, classes, N, where the images came from
    metrics: dict = field(default_factory=dict)    # test metrics (qgen evaluate) and validation rows

    def __post_init__(self) -> None:
        check_seed(self.seed, "seed")
        if self.channels not in (1, 3):
            raise QgenError(f"channels must be 1 or 3, got {self.channels}")
        if self.image_size != 28:
            raise QgenError(f"qgen models are 28x28, got image_size {self.image_size}")

    def to_json(self) -> str:
        return json.dumps(to_dict(self), indent=2, default=str) + "\n"


def read_folder_config(path: Path) -> FolderConfig:
    """Parse and check a model folder's config.json; every problem is one QgenError naming the file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise QgenError(f"{path.parent} is not a qgen model folder: it has no {path.name} "
                        "(make one with qgen export --run RUN --out DIR)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise QgenError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict) or data.get("model_type") != MODEL_TYPE:
        found = data.get("model_type") if isinstance(data, dict) else type(data).__name__
        raise QgenError(f"{path} is not a qgen model config (model_type {found!r}, expected {MODEL_TYPE!r})")
    if data.get("format_version") != FORMAT_VERSION:
        raise QgenError(f"{path} has format_version {data.get('format_version')!r}; this qgen reads "
                        f"version {FORMAT_VERSION} (export the run again with this qgen)")
    try:
        return from_dict(FolderConfig, data)
    except QgenError as exc:
        raise QgenError(f"{path}: {exc}") from None
