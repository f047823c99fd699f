"""torchmetrics metrics: disentanglement scores (one module each) and sample quality (FID/KID)."""

from typing import Literal

from metrics.beta_vae import BetaVAEScore, beta_vae_score
from metrics.dci import DCIScore, dci
from metrics.disentanglement import PROTOCOLS, DisentanglementMetric, ProtocolName
from metrics.factor_vae import FactorVAEScore, factor_vae_score
from metrics.fid import (
    INCEPTION_WEIGHTS_FILE,
    INCEPTION_WEIGHTS_URL,
    SampleQuality,
    inception_weights_path,
    load_inception,
    save_random_inception,
    to_uint8_rgb,
)
from metrics.mig import MutualInformationGap, mig
from metrics.mixture import mixture_coverage, moment_distance
from metrics.sap import SAPScore, sap

#: The disentanglement metric classes by the short name the callback and the logged keys use: the
#: one list of their names.
METRICS: dict[str, type[DisentanglementMetric]] = {
    "beta_vae": BetaVAEScore, "factor_vae": FactorVAEScore, "mig": MutualInformationGap, "sap": SAPScore, "dci": DCIScore,
}
#: A key of ``METRICS`` (as a type, for the callback's arguments).
MetricName = Literal[tuple(METRICS)]  # type: ignore[valid-type]

__all__ = [
    "INCEPTION_WEIGHTS_FILE",
    "INCEPTION_WEIGHTS_URL",
    "METRICS",
    "PROTOCOLS",
    "BetaVAEScore",
    "DCIScore",
    "DisentanglementMetric",
    "FactorVAEScore",
    "MetricName",
    "MutualInformationGap",
    "ProtocolName",
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
