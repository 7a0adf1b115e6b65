"""qgen's version, from the installed distribution's metadata.

Its own module so that code which needs only the version (``qgen --version``, model cards, run
manifests) does not depend on the ``qgen`` package itself, whose ``__getattr__`` reaches the whole
Python API (``qgen.api``).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("qgen")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"
