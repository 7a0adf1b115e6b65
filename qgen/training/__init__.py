"""Training: the loop and the recipe it runs.

  trainer.py       the loop: one recipe step, in-training quality, checkpoints, clean stops and failures
  recipe.py        the measured default recipe for < 100 images (docs/results/recipe/)
  run.py           starting and resuming runs: validate everything, then create or lock the run directory
  lr_schedule.py   warm-up + cosine learning rate, a pure function of the step
  ema.py           the EMA of the weights (with a power warm-up)
  freeze.py        parameters kept at their initial values (train.freeze: the frozen-circuit control)
  augment.py       safe augmentation for tiny datasets (small translations)
  quality.py       validation FLD and copy fraction against the floor and memorizer baselines
  tensorboard.py   TensorBoard event files of a run (a view; the CSV logs stay the record)
"""
