"""Model folders: a trained run exported as a self-describing folder anyone can load (``qgen export``).

The folder follows the Hugging Face convention (``qgen.rundir.layout.ModelFolder`` names its files):
``model.safetensors`` with the EMA weights, ``config.json`` with everything needed to rebuild the
model (architecture, circuit spec, schedule, objective, backend), the transpiled circuit as QPY and
OpenQASM 3, and a ``README.md`` model card. Loading reads JSON and safetensors only: nothing in a
model folder is ever unpickled.

    folder_config.py   config.json: what it holds, written and read back strictly
    card.py            the README.md model card (data, steps, backend, metrics with baselines, caveats)
    export.py          run directory -> model folder, whole or not at all
    load.py            ``from_pretrained(DIR)``: the model rebuilt and its weights loaded, no run needed
"""

from qgen.pretrained.export import export_run
from qgen.pretrained.load import PretrainedModel, from_pretrained

__all__ = ["PretrainedModel", "export_run", "from_pretrained"]
