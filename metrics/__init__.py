"""torchmetrics metrics: disentanglement scores (FID/KID join them)."""

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

__all__ = [
    "METRICS",
    "PROTOCOLS",
    "BetaVAEScore",
    "DCIScore",
    "DisentanglementMetric",
    "FactorVAEScore",
    "MutualInformationGap",
    "SAPScore",
    "beta_vae_score",
    "dci",
    "factor_vae_score",
    "mig",
    "sap",
]
