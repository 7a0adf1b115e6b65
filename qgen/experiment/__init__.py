"""``qgen experiment``: the honest comparison of the quantum bottleneck with its controls.

One experiment is a grid of cells (dataset x arm x training-set size x seed). Each cell trains a
run, samples from it and evaluates the samples; the experiment then summarises all cells with
confidence intervals and paired comparisons and writes a report that says whether the claim
"the quantum bottleneck beats its parameter-matched classical counterpart with ~100 images or fewer"
holds (the protocol: docs/results/experiment/PROTOCOL.md). Modules, one concept each:

  config    ExperimentConfig and its TOML form        presets   smoke / full
  arms      what each arm changes                     cells     the grid, cell ids and folders, run configs
  state     the progress file                         runner    the executors: cells not yet done, resumable
  cell_run  one cell: train -> sample -> evaluate (what both executors run)
  estimate  CPU-time estimate for --dry-run           stats     t-intervals, log-ratio tests, TOST, power
  summary   summary.csv rows                          tables    markdown tables
  verdict   the protocol's decision rule              figures   plots and sample grids
  pairing   matching cells of two arms into pairs     plan      --dry-run: status and time per cell
  report    report.md and tables.md                   outputs   everything written from finished cells
  environment  versions, CPU, commit per cell          hardware  --hardware: the largest-N quantum cells on fake_fez
  ray_executor  --executor ray: each cell a Ray task    cli       the click command (experiment_command)
"""

from qgen.experiment.config import DatasetSpec, ExperimentConfig, load_experiment_config

__all__ = ["DatasetSpec", "ExperimentConfig", "load_experiment_config"]
