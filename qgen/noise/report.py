"""Statistical checks of noise: are these bits fair and these samples standard normal?

Thresholds are in standard deviations (4 sigma: a good source fails a check about 6e-5 of the time)
except the KS test, which uses its p-value.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from qgen.errors import QgenError


@dataclass(frozen=True)
class ReportThresholds:
    max_abs_z: float = 4.0
    min_ks_p: float = 0.01


def _lag1(x: np.ndarray) -> float:
    x = x.astype(np.float64) - x.mean()
    denom = float(x @ x)
    return float(x[:-1] @ x[1:]) / denom if denom else 1.0


def bit_report(bits: np.ndarray, thresholds: ReportThresholds = ReportThresholds()) -> dict:
    bits = np.asarray(bits, dtype=np.uint8).reshape(-1)
    n = bits.size
    p1 = float(bits.mean())
    bias_z = (p1 - 0.5) * 2 * math.sqrt(n)  # (ones - n/2) / sqrt(n/4)
    lag1 = _lag1(bits)
    return {
        "n_bits": n,
        "fraction_ones": p1,
        "bias_z": bias_z,
        "serial_corr_lag1": lag1,
        "serial_corr_z": lag1 * math.sqrt(n),
        # -log2 of the likelier bit value: the most a Toeplitz ratio may be for these raw bits.
        "min_entropy_per_bit": -math.log2(max(p1, 1 - p1)) if 0 < p1 < 1 else 0.0,
        "pass": abs(bias_z) < thresholds.max_abs_z and abs(lag1 * math.sqrt(n)) < thresholds.max_abs_z,
    }


def gaussian_report(samples: np.ndarray, thresholds: ReportThresholds = ReportThresholds()) -> dict:
    x = np.asarray(samples, dtype=np.float64).reshape(-1)
    n = x.size
    mean, var = float(x.mean()), float(x.var())
    # here, not at the top: every command that samples imports qgen.noise, and scipy.stats would add ~1.1 s
    # (measured) to each; only the noise report needs it
    from scipy import stats

    ks = stats.kstest(x, "norm")
    lag1 = _lag1(x)
    checks = {
        "mean_z": mean * math.sqrt(n),
        "var_z": (var - 1) / math.sqrt(2 / n),  # sample variance of N(0,1) has sd sqrt(2/n)
        "serial_corr_z": lag1 * math.sqrt(n),
    }
    return {
        "n_samples": n, "mean": mean, "variance": var, "ks_statistic": float(ks.statistic),
        "ks_pvalue": float(ks.pvalue), "serial_corr_lag1": lag1, **checks,
        "pass": all(abs(z) < thresholds.max_abs_z for z in checks.values())
        and ks.pvalue > thresholds.min_ks_p,
    }


def noise_report(samples: np.ndarray | None = None, bits: np.ndarray | None = None,
                 thresholds: ReportThresholds = ReportThresholds()) -> dict:
    """Report on Gaussian ``samples`` and/or raw or extracted ``bits``; ``pass`` = all parts pass."""
    if samples is None and bits is None:
        raise QgenError("noise_report needs samples or bits")
    out: dict = {"thresholds": asdict(thresholds)}
    if bits is not None:
        out["bits"] = bit_report(bits, thresholds)
    if samples is not None:
        out["gaussians"] = gaussian_report(np.asarray(samples), thresholds)
    out["pass"] = all(part["pass"] for key, part in out.items() if key in ("bits", "gaussians"))
    return out


def format_report(report: dict, title: str = "noise report") -> str:
    lines = [f"{title}: {'PASS' if report['pass'] else 'FAIL'}"]
    if "bits" in report:
        b = report["bits"]
        lines.append(f"  bits      n={b['n_bits']:,}  ones={b['fraction_ones']:.4f} (z={b['bias_z']:+.1f})"
                     f"  lag-1 r={b['serial_corr_lag1']:+.4f} (z={b['serial_corr_z']:+.1f})"
                     f"  H_min={b['min_entropy_per_bit']:.3f}/bit  {'ok' if b['pass'] else 'FAIL'}")
    if "gaussians" in report:
        g = report["gaussians"]
        lines.append(f"  gaussians n={g['n_samples']:,}  mean={g['mean']:+.4f} (z={g['mean_z']:+.1f})"
                     f"  var={g['variance']:.4f} (z={g['var_z']:+.1f})  KS p={g['ks_pvalue']:.3g}"
                     f"  lag-1 r={g['serial_corr_lag1']:+.4f}  {'ok' if g['pass'] else 'FAIL'}")
    return "\n".join(lines)
