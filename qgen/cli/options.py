"""Click parameter types that reject what would otherwise slip through as a silently wrong run.

``float('nan')`` passes every ``x <= 0`` check and ``inf`` blows up steps later, so numbers are checked
where they enter: finite, and within the range the option allows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import click

from qgen.seed import MAX_SEED


class FiniteFloat(click.ParamType):
    """A finite float, optionally bounded below (``min``, ``min_open`` for a strict bound)."""

    name = "number"

    def __init__(self, min: float | None = None, min_open: bool = False) -> None:  # noqa: A002 - click's spelling
        self.min, self.min_open = min, min_open

    def convert(self, value, param, ctx):
        if isinstance(value, float) and math.isfinite(value):
            number = value
        else:
            try:
                number = float(value)
            except (TypeError, ValueError):
                self.fail(f"{value!r} is not a number", param, ctx)
            if not math.isfinite(number):
                self.fail(f"{value!r} is not a finite number", param, ctx)
        if self.min is not None and (number < self.min or (self.min_open and number == self.min)):
            bound = ">" if self.min_open else ">="
            self.fail(f"{value!r} must be {bound} {self.min:g}", param, ctx)
        return number


POSITIVE_FLOAT = FiniteFloat(min=0.0, min_open=True)
NON_NEGATIVE_FLOAT = FiniteFloat(min=0.0)
POSITIVE_INT = click.IntRange(min=1)
#: --seed of every command: the range qgen.seed checks in config files too
SEED = click.IntRange(0, MAX_SEED)
NON_NEGATIVE_INT = click.IntRange(min=0)


def _named_device(ctx, param, value: str | None) -> str | None:
    """``--device ''`` (an unset shell variable) must not quietly mean auto."""
    if value is not None and not value.strip():
        raise click.BadParameter("is empty; name a device: auto, cpu, cuda, cuda:N or mps", ctx, param)
    return value


def device_option(default: str | None = "auto", help_extra: str = ""):
    """``--device``: where the torch parts run (checked when used, by ``qgen.torch_device``)."""
    return click.option("--device", "device", default=default, show_default=default is not None,
                        callback=_named_device,
                        help="torch device: auto (cuda when available, else cpu), cpu, cuda, cuda:N or mps"
                             + help_extra)


class LazyChoice(click.Choice):
    """A choice among the names that ``names()`` returns, called only when a value is checked or the
    help lists them: the registries the names come from (samplers, experiment presets, executors)
    import torch, which ``qgen --help`` and the other commands do without."""

    def __init__(self, names: Callable[[], Sequence[str]]) -> None:
        self._names = names
        self._read: tuple[str, ...] | None = None
        super().__init__(())

    @property
    def choices(self) -> tuple[str, ...]:
        if self._read is None:
            self._read = tuple(self._names())
        return self._read

    @choices.setter
    def choices(self, value) -> None:  # click.Choice.__init__ assigns; the registry is the one list
        pass
