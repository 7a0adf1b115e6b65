"""Intrinsic quantum-generated noise: Sampler bits -> extraction -> entropy pool -> N(0, 1) tensors."""

from qgen.backends.bit_sampling import aer_sampler_factory, fixed_sampler
from qgen.noise.bit_source import BitBatch, QuantumBitSource
from qgen.noise.demand import NoiseBudget, plan_bits
from qgen.noise.circuits import hadamard_circuit
from qgen.noise.convert import BITS_PER_GAUSSIAN, bits_to_gaussians, bits_to_uniforms, uniforms_to_gaussians
from qgen.noise.extract import (
    Extractor,
    ToeplitzExtractor,
    VonNeumannExtractor,
    default_extractors,
    extract,
    nominal_yield,
)
from qgen.noise.mixed import MixedNoise
from qgen.noise.pool import EntropyPool
from qgen.noise.report import ReportThresholds, format_report, noise_report
from qgen.noise.seeds import SeedChain
from qgen.noise.sources import ClassicalNoise, NoiseSource, QuantumNoise

__all__ = [
    "BITS_PER_GAUSSIAN", "BitBatch", "ClassicalNoise", "EntropyPool", "Extractor", "MixedNoise",
    "NoiseBudget", "NoiseSource", "QuantumBitSource", "QuantumNoise", "ReportThresholds",
    "SeedChain", "ToeplitzExtractor", "VonNeumannExtractor", "aer_sampler_factory",
    "bits_to_gaussians", "bits_to_uniforms", "default_extractors", "extract", "fixed_sampler",
    "format_report", "hadamard_circuit", "noise_report", "nominal_yield", "plan_bits",
    "uniforms_to_gaussians",
]
