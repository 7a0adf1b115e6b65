"""Build the documentation (Sphinx, warnings as errors): ``python -m qgen.docs [OUT]``.

Needs the ``docs`` extra (``pip install -e ".[docs]"``); writes HTML to OUT (default docs/_build/html).
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]) if args else DOCS / "_build" / "html"
    try:  # Sphinx is the optional [docs] extra: imported here, where its absence is one clear line
        from sphinx.cmd.build import build_main
    except ImportError:
        print("qgen: error: Sphinx is not installed; install the docs extra: pip install -e \".[docs]\"",
              file=sys.stderr)
        return 2
    # -W: warnings are errors; --keep-going: report all of them; -n: nitpicky off (see conf.py); -q: quiet
    return build_main(["-W", "--keep-going", "-q", "-b", "html", str(DOCS), str(out)])


if __name__ == "__main__":
    sys.exit(main())
