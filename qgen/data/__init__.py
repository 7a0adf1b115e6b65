"""Real image datasets for qgen: MNIST (with an offline fallback) and MedMNIST, as [-1, 1] tensors.

Usage::

    from qgen.data import DataConfig, load_dataset
    data = load_dataset(DataConfig(dataset="mnist", classes=(3,), n_train=64, seed=0))
    data.images  # (64, 1, 28, 28) float32 in [-1, 1]; data.source records where they came from
"""

from qgen.data.config import SPLITS, DataConfig, LoadedData, default_data_root
from qgen.data.loader import available_datasets, load_dataset
from qgen.data.scaling import to_uint8_pixels, to_unit_range

__all__ = [
    "SPLITS",
    "DataConfig",
    "LoadedData",
    "available_datasets",
    "default_data_root",
    "load_dataset",
    "to_uint8_pixels",
    "to_unit_range",
]
