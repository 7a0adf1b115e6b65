"""qgen: Qiskit-native hybrid quantum-classical diffusion image generation."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("qgen")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
