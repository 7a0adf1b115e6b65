"""qgen's version: the installed distribution's, or a placeholder in a source tree that was never installed."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("qgen")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"
