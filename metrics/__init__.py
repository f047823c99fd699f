"""torchmetrics metrics: disentanglement scores and sample quality (FID/KID)."""

from metrics.disentanglement import (
    METRICS,
    PROTOCOLS,
    BetaVAEScore,
    DCIScore,
    DisentanglementMetric,
    FactorVAEScore,
    MutualInformationGap,
    SAPScore,
    beta_vae_score,
    dci,
    factor_vae_score,
    mig,
    sap,
)
from metrics.mixture import mixture_coverage, moment_distance
from metrics.fid import (
    INCEPTION_WEIGHTS_FILE,
    INCEPTION_WEIGHTS_URL,
    SampleQuality,
    inception_weights_path,
    load_inception,
    save_random_inception,
    to_uint8_rgb,
)

__all__ = [
    "INCEPTION_WEIGHTS_FILE",
    "INCEPTION_WEIGHTS_URL",
    "METRICS",
    "PROTOCOLS",
    "BetaVAEScore",
    "DCIScore",
    "DisentanglementMetric",
    "FactorVAEScore",
    "MutualInformationGap",
    "SAPScore",
    "SampleQuality",
    "beta_vae_score",
    "dci",
    "factor_vae_score",
    "inception_weights_path",
    "load_inception",
    "mig",
    "mixture_coverage",
    "moment_distance",
    "sap",
    "save_random_inception",
    "to_uint8_rgb",
]
