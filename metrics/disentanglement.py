"""What the five disentanglement scores share: the metric contract, the protocols, the estimator helpers.

Each score is a :class:`DisentanglementMetric` (a :class:`torchmetrics.Metric`) in a module of its
own, with a function ``fn(ground_truth, represent, *, protocol="disentanglement_lib", seed=0,
**sizes) -> dict[str, float]``:

- ``metrics.beta_vae``: :func:`beta_vae_score` (Higgins et al. 2017, sec. 3): accuracy of a linear
  classifier that tells which factor a pair of observations shares from the mean |difference| of
  their codes;
- ``metrics.factor_vae``: :func:`factor_vae_score` (Kim & Mnih 2018, sec. 4): accuracy of a majority
  vote that tells which factor a batch shares from the code dimension of least variance (scaled by
  its global std);
- ``metrics.mig``: :func:`mig` (Chen et al. 2018, eq. 4): mutual information gap of the discretised codes;
- ``metrics.sap``: :func:`sap` (Kumar et al. 2018, sec. 3): gap of the two most predictive code dimensions;
- ``metrics.dci``: :func:`dci` (Eastwood & Williams 2018): disentanglement, completeness and
  informativeness from the feature importances of gradient-boosted trees (``metrics.gradient_boosting``).

``metrics.METRICS`` maps their short names (the callback's and the logged keys') to the classes.
The algorithms follow google-research/disentanglement_lib (``evaluation/metrics``), whose defaults
are the ``disentanglement_lib`` protocol; the ``infogan_cr`` protocol changes the FactorVAE score to
the one of fjxmlzn/InfoGAN-CR (the numbers behind IDGAN-SC's table 3) and keeps the others.
Where the reference is ambiguous or fails, each metric's docstring says what we do. Shared rules:

- a factor with a single value carries no information: it is never the fixed factor of a pair or
  vote, and MIG, SAP and DCI average over the other factors (the reference divides by zero);
- a code of shape other than ``[n, D]`` for ``n`` observations, or with NaN/inf, is a ``ValueError``.

Every score is unitless, in [0, 1] (accuracies, or information / entropy ratios).

Each metric draws its factors once, from ``seed`` (a CPU ``torch.Generator``), at construction, as
groups of observations (a β-VAE point's pairs, a FactorVAE vote's batch, or one point).
``observe(represent, rank=r, world_size=w)`` encodes a contiguous ``1/w`` share of the groups and
keeps a summary of each (e.g. the mean |difference| of a β-VAE point's pairs, not its 128 codes);
summaries and group indices are list states reduced by concatenation, so under DDP ``compute()``
gathers every rank's share, restores the order and gives every rank the scores of one process
with that seed.
"""

from __future__ import annotations

import os
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, Literal, Protocol, get_args

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

#: The evaluation protocols (module docstring); the callback's ``protocol`` argument takes these.
ProtocolName = Literal["disentanglement_lib", "infogan_cr"]
PROTOCOLS: tuple[str, ...] = get_args(ProtocolName)

#: Observations [n, ...] -> codes [n, D] (e.g. a model's posterior mean).
Represent = Callable[[Tensor], Tensor]


class GroundTruth(Protocol):
    """What the metrics need of a dataset with known factors (``datamodules.GridGroundTruth``:
    dSprites and its variants, 3D Shapes, MPI3D, SmallNORB, Cars3D).

    ``images_for`` is called without a generator: a dataset that draws more than the factors
    (colours, noise, SmallNORB's toy) must then give the same images for the same request, so
    every evaluation sees the same observations."""

    factor_sizes: list[int]
    #: The classes of each factor that ``sample_factors`` draws (all of them, or the ones the data holds).
    factor_classes: list[Tensor]

    def sample_factors(self, n: int, generator: torch.Generator) -> Tensor:
        """Factor classes [n, F] drawn with ``generator``, each within its ``factor_sizes``."""
        ...

    def images_for(self, factors: Tensor) -> Tensor:
        """The observations [n, C, H, W] (values in [0, 1]) of factor classes [n, F]."""
        ...


class DisentanglementMetric(Metric, ABC):
    """Shared machinery: the factors to observe, the codes as DDP-gathered states, the checks.

    Args:
        ground_truth: The dataset's factors and observations (see :class:`GroundTruth`).
        protocol: One of :data:`PROTOCOLS` (module docstring).
        seed: Seeds the factor sampling and the classifiers.
        sizes: Overrides of the protocol's sample counts and batch sizes (``defaults`` names them).

    Raises:
        ValueError: an unknown ``protocol``, or a ground truth whose every factor has one value.
        TypeError: a size the metric does not take.
    """

    #: The sizes of the ``disentanglement_lib`` protocol; their names are the accepted ``sizes``.
    defaults: ClassVar[dict[str, Any]]
    #: Per-protocol changes to ``defaults``.
    protocol_defaults: ClassVar[dict[str, dict[str, Any]]] = {}
    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, ground_truth: GroundTruth, protocol: ProtocolName = "disentanglement_lib", seed: int = 0,
                 **sizes: Any) -> None:
        super().__init__()
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {protocol!r}; choose one of {PROTOCOLS}")
        unknown = sorted(set(sizes) - set(self.defaults))
        if unknown:
            raise TypeError(f"{type(self).__name__} takes the sizes {sorted(self.defaults)}, not {unknown}")
        self.ground_truth, self.protocol, self.seed = ground_truth, protocol, seed
        self.sizes = {**self.defaults, **self.protocol_defaults.get(protocol, {}), **sizes}
        self.factor_sizes = [int(size) for size in ground_truth.factor_sizes]
        #: The factors with more than one value in the data: the only ones a score can be about.
        self.varying = torch.tensor([j for j, classes in enumerate(ground_truth.factor_classes) if len(classes) > 1], dtype=torch.long)
        if len(self.varying) == 0:
            raise ValueError("every factor has a single value: there is nothing to disentangle")
        #: Factor classes [groups, group size, F] of every observation the score needs, in order.
        self.observations = self.plan(torch.Generator().manual_seed(seed))
        self.add_state("summaries", [], dist_reduce_fx="cat")
        self.add_state("groups", [], dist_reduce_fx="cat")

    @abstractmethod
    def plan(self, generator: torch.Generator) -> Tensor:
        """Draw the factor classes [groups, group size, F] of the observations to encode (and
        keep any labels)."""

    def summarise(self, codes: Tensor) -> Tensor:
        """What ``score`` needs of each group: codes [g, group size, D] (float64) -> [g, S]."""
        return codes.flatten(1)

    @abstractmethod
    def score(self, summaries: np.ndarray) -> dict[str, float]:
        """The scores from the summaries [groups, S] of every group, in order."""

    def observe(self, represent: Represent, *, batch_size: int = 4096, rank: int = 0, world_size: int = 1,
                device: torch.device | str | None = None) -> None:
        """Encode this process's share of the groups with ``represent``, about ``batch_size``
        observations at a time.

        The share is the ``rank``-th of ``world_size`` contiguous parts; observations are made on
        ``device`` (the model's) when given.
        """
        share = torch.arange(len(self.observations)).tensor_split(world_size)[rank]
        for chunk in share.split(max(1, batch_size // self.observations.shape[1])):
            factors = self.observations[chunk].flatten(0, 1)
            codes = represent(self.ground_truth.images_for(factors if device is None else factors.to(device)))
            self.update(codes, chunk)

    def update(self, codes: Tensor, groups: Tensor) -> None:
        """Codes [n, D] of the observations of the given groups (indices into ``observations``).

        Raises:
            ValueError: codes not of shape ``[len(groups) * group size, D]``, NaN/inf codes, or a
                code dimension ``D`` other than earlier batches'.
        """
        group_size = self.observations.shape[1]
        if codes.ndim != 2 or codes.shape[0] != len(groups) * group_size:
            raise ValueError(
                f"a representation must map n observations to codes of shape [n, D]; "
                f"got shape {list(codes.shape)} for n={len(groups) * group_size}"
            )
        if not torch.isfinite(codes).all():
            raise ValueError("the representation returned NaN or infinite codes")
        summaries = self.summarise(codes.detach().double().view(len(groups), group_size, -1))
        if self.summaries and summaries.shape[1] != self.summaries[0].shape[1]:
            raise ValueError(f"the code dimension changed between batches (got codes of shape {list(codes.shape)})")
        self.summaries.append(summaries.to(self.device))
        self.groups.append(torch.as_tensor(groups, dtype=torch.long, device=self.device))

    def compute(self) -> dict[str, Tensor]:
        """The scores (float64 scalars, by key) of every group's codes, gathered across processes.

        Raises:
            RuntimeError: no codes observed, or not every group's codes exactly once.
        """
        n = len(self.observations)
        if len(self.groups) == 0:
            raise RuntimeError(f"{type(self).__name__} has no codes: call observe(represent) before compute()")
        groups = dim_zero_cat(self.groups).cpu()
        order = groups.argsort()
        if not torch.equal(groups[order], torch.arange(n)):
            raise RuntimeError(
                f"{type(self).__name__} needs the codes of each of its {n} groups of observations exactly "
                f"once; it has {len(groups)} for {len(groups.unique())} of them"
            )
        summaries = dim_zero_cat(self.summaries).cpu()[order].numpy()
        return {key: torch.tensor(value, dtype=torch.float64) for key, value in self.score(summaries).items()}

    @classmethod
    def evaluate(cls, ground_truth: GroundTruth, represent: Represent, *, protocol: ProtocolName = "disentanglement_lib",
                 seed: int = 0, **sizes: Any) -> dict[str, float]:
        """The scores of ``represent`` (observations -> codes [n, D]) on ``ground_truth`` in one
        call and one process; ``sizes`` override the protocol's (``defaults`` names them).

        Returns:
            The scores by key (the class docstring's "Keys"), unitless, in [0, 1].

        Raises:
            ValueError: an unknown protocol, a ground truth with nothing to disentangle, or codes
                not of shape [n, D] or not finite.
            TypeError: a size the metric does not take.
        """
        metric = cls(ground_truth, protocol=protocol, seed=seed, **sizes)
        metric.sync_on_compute = False  # one process observed everything
        with torch.no_grad():
            metric.observe(represent)
        return {key: float(value) for key, value in metric.compute().items()}

    def _fixed_factors(self, n: int, generator: torch.Generator) -> Tensor:
        """For each of ``n`` groups, a varying factor drawn uniformly."""
        return self.varying[torch.randint(len(self.varying), (n,), generator=generator)]

    def _ys(self) -> np.ndarray:
        """The factor classes [N, F] of single-observation groups."""
        return self.observations[:, 0].numpy()


def functional(name: str, metric_class: type[DisentanglementMetric]) -> Callable[..., dict[str, float]]:
    """``metric_class.evaluate`` as a function named ``name``, documented by the class."""

    def evaluate(ground_truth: GroundTruth, represent: Represent, *, protocol: ProtocolName = "disentanglement_lib",
                 seed: int = 0, **sizes: Any) -> dict[str, float]:
        return metric_class.evaluate(ground_truth, represent, protocol=protocol, seed=seed, **sizes)

    evaluate.__name__ = evaluate.__qualname__ = name
    evaluate.__doc__ = (
        f"{metric_class.__name__} of ``represent`` (observations -> codes [n, D]) on ``ground_truth``, "
        f"in one call; ``sizes`` override the protocol's ({', '.join(metric_class.defaults)}). Returns "
        f"the scores by key, unitless, in [0, 1]; raises as ``{metric_class.__name__}.evaluate``.\n\n"
        f"{metric_class.__doc__}"
    )
    return evaluate


# ------------------------------------------------------------------------ estimator helpers
def parallel_map(fn: Callable[[Any], Any], items: list, workers: int | None = None) -> list:
    """``[fn(item) for item in items]`` on ``workers`` threads (default: one per core): the
    estimators fit single-threaded outside the GIL, so results do not depend on the thread count."""
    with ThreadPoolExecutor(max_workers=workers or max(1, min(len(items), os.cpu_count() or 1))) as pool:
        return list(pool.map(fn, items))


def eval_accuracy(classifier, x: np.ndarray, y: np.ndarray, num_train: int) -> float:
    """Accuracy on ``x[num_train:]`` of ``classifier`` fitted on ``x[:num_train]`` (a training set
    with one class predicts that class)."""
    classes = np.unique(y[:num_train])
    if len(classes) == 1:
        predictions = np.full(len(y) - num_train, classes[0])
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # the reference's iteration caps
            predictions = classifier.fit(x[:num_train], y[:num_train]).predict(x[num_train:])
    return float(np.mean(predictions == y[num_train:]))


def top_two_gap(scores: np.ndarray) -> np.ndarray:
    """Per column, the largest entry minus the second largest (0 when there is one row)."""
    ordered = np.sort(scores, axis=0)
    return ordered[-1] - (ordered[-2] if len(ordered) > 1 else 0.0)

