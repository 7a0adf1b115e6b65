"""The denoiser: a small U-Net for 28×28 images whose 7×7 bottleneck is gated.

  unet.py     the U-Net (28 → 14 → 7 → 14 → 28) with a slot for the gate
  gates.py    the shared gate shell; the quantum middle (EstimatorQNN in a TorchConnector) and the
              parameter-matched classical middle
  config.py   ModelConfig (kind quantum | classical | plain, widths, qubits, layers, entanglement)
  build.py    build_model: a ModelConfig (+ a backend for the quantum kind) → the module
"""
