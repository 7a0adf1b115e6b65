"""The denoiser: a small U-Net for 28×28 images with a bottleneck block at 7×7.

  unet.py         the U-Net (28 → 14 → 7 → 14 → 28), its skip connections, a slot for the block
  bottlenecks.py  the designs of the block (channel_gate, site, patch, film): where the middle sits
  middles.py      the middle maps: the circuit (EstimatorQNN in a TorchConnector) and the
                  parameter-matched classical twin
  ablation.py     replacing the middle's readouts (mean, shuffle) to measure what the images need
  config.py       ModelConfig (kind, widths, qubits, layers, entanglement, bottleneck, readout, skips)
  build.py        build_model: a ModelConfig (+ a backend for the quantum kind) → the module
"""
