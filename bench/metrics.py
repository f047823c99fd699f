"""Time of each disentanglement metric and of the suite, ours against the reference algorithm.

    python -m bench.metrics            # both, at the disentanglement_lib sizes
    python -m bench.metrics --fixtures # the known-answer codes: our scores, and DCI's next to the
                                       # reference's mean over --repeats random_states on the same samples

The input is a 10-dim code of a 5-factor dataset with dSprites' factor sizes whose observations
are the factors (``FactorGroundTruth``): the standardised factors mixed with leakage between
dimensions plus a deterministic pseudo-noise, 5 of the dimensions weakly informative. The
reference is ``bench/reference_disentanglement.py`` (disentanglement_lib's algorithms with
scikit-learn); ours is ``metrics`` (``metrics.METRICS``). Timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from bench import reference_disentanglement as reference
from datamodules.synthetic import FactorGroundTruth
from metrics import METRICS, DCIScore
from tests.helpers import factor_codes

FACTOR_SIZES = (3, 6, 40, 32, 32)
FIXTURES = ("ideal", "rotated", "partial", "noise", "copies")


def bench_code(ground_truth: FactorGroundTruth, seed: int = 0):
    """A deterministic imperfect 10-dim code: factors leak into several dimensions, plus pseudo-noise."""
    generator = torch.Generator().manual_seed(seed)
    mixing = torch.cat([torch.eye(5), torch.zeros(5, 5)], dim=1) + 0.3 * torch.randn(5, 10, generator=generator)
    scramble = torch.randn(5, 10, generator=generator)

    def represent(observations):
        factors = ground_truth.standardise(observations)
        return factors @ mixing + 0.5 * torch.sin(37.0 * factors @ scramble)

    return represent


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    seconds = time.perf_counter() - start
    return (result if isinstance(result, dict) else {fn.__name__: result}), seconds


def fixtures(ground_truth: FactorGroundTruth, num_train: int, num_test: int, repeats: int) -> None:
    """Every score of each known-answer code; DCI's ours / the reference's mean (± std over its
    ``repeats`` random_states, which break its ties) on the same samples, with the times."""
    for kind in FIXTURES:
        represent = factor_codes(ground_truth, kind)
        scores = {}
        for name, metric_class in METRICS.items():
            if name != "dci":  # below, with the reference's
                scores.update(metric_class.evaluate(ground_truth, represent))
        print(f"{kind:8s} " + "  ".join(f"{key} {value:.3f}" for key, value in scores.items()), flush=True)
        metric = DCIScore(ground_truth, num_train=num_train, num_test=num_test)
        with torch.no_grad():
            codes = represent(ground_truth.images_for(metric.observations[:, 0])).double().numpy()
        ys = metric._ys()
        our_scores, our_seconds = timed(metric.score, codes)
        start = time.perf_counter()
        references = [reference.dci_scores(codes[:num_train], ys[:num_train], codes[num_train:], ys[num_train:], random_state)
                      for random_state in range(repeats)]
        ref_seconds = (time.perf_counter() - start) / repeats
        print(f"{'':8s} DCI {num_train}/{num_test}: ours {our_seconds:.1f} s, reference {ref_seconds:.1f} s each  " + "  ".join(
            f"{key.removeprefix('dci_')} {value:.3f} / {np.mean([r[key] for r in references]):.3f}"
            f" ± {np.std([r[key] for r in references]):.3f}" for key, value in our_scores.items()), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fixtures", action="store_true", help="print our scores of the known-answer codes")
    parser.add_argument("--no-reference", action="store_true", help="skip the reference (DCI takes minutes)")
    parser.add_argument("--dci-num-train", type=int, default=10000, help="DCI's training points for --fixtures")
    parser.add_argument("--dci-num-test", type=int, default=5000, help="DCI's test points for --fixtures")
    parser.add_argument("--repeats", type=int, default=3, help="reference random_states averaged for --fixtures")
    args = parser.parse_args()
    torch.set_num_threads(1)  # OpenMP threads spin badly on a shared 2-core machine; same for both sides
    ground_truth = FactorGroundTruth(FACTOR_SIZES)
    if args.fixtures:
        fixtures(ground_truth, args.dci_num_train, args.dci_num_test, args.repeats)
        return
    represent = bench_code(ground_truth)
    print(f"{'metric':17s} {'ours s':>8s} {'ref s':>8s}  scores (ours / reference)", flush=True)
    totals = [0.0, 0.0]
    for name, metric_class in METRICS.items():
        our_scores, our_seconds = timed(metric_class.evaluate, ground_truth, represent)
        totals[0] += our_seconds
        if args.no_reference:
            print(f"{name:17s} {our_seconds:8.2f} {'-':>8s}  " + "  ".join(f"{k} {v:.3f}" for k, v in our_scores.items()), flush=True)
            continue
        ref_scores, ref_seconds = timed(getattr(reference, name), ground_truth, represent)
        totals[1] += ref_seconds
        ref_scores = {key: ref_scores[next(iter(ref_scores))] for key in our_scores} if len(ref_scores) == 1 else ref_scores
        print(f"{name:17s} {our_seconds:8.2f} {ref_seconds:8.2f}  "
              + "  ".join(f"{k} {our_scores[k]:.3f} / {ref_scores[k]:.3f}" for k in our_scores), flush=True)
    print(f"{'suite':17s} {totals[0]:8.2f} {totals[1] if not args.no_reference else float('nan'):8.2f}"
          + (f"  speed-up {totals[1] / totals[0]:.0f}x" if not args.no_reference else ""), flush=True)


if __name__ == "__main__":
    main()
