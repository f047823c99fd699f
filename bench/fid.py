"""Time of one FIDEvaluation, with a cold and a warm cache of the real statistics, and the share of
it spent outside the Inception's forward pass.

A 64 px DCGAN is evaluated against procedural dSprites. Three evaluations: *cold* (empty cache:
the real images are embedded too, then cached), *warm, disk* (a new callback, as in a later run: the
real statistics come from the cache file) and *warm, memory* (the same callback again, as at the
next evaluation of a run). Without ``--inception-weights`` an Inception with random (He-initialised)
weights, saved in the published format, is used: same network, same cost, scores that rank samples
but are not the Inception's.

    python -m bench.fid                                             # 10,000 samples, 50,000 real, CPU
    python -m bench.fid --device cuda
    python -m bench.fid --num-samples 100 --num-real-samples 500   # a CPU run that ends in minutes
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from callbacks import FIDEvaluation
from datamodules import DSpritesDataModule
from lightning_modules import DCGAN
from metrics import INCEPTION_WEIGHTS_FILE, save_random_inception


class ForwardTimer:
    """Wall time spent inside a module's forward calls (synchronising CUDA at both ends)."""

    def __init__(self, module: torch.nn.Module, device: torch.device) -> None:
        self.device, self.seconds, self._start = device, 0.0, 0.0
        module.register_forward_pre_hook(self._enter)
        module.register_forward_hook(self._exit)

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _enter(self, module, inputs) -> None:
        self.sync()
        self._start = time.perf_counter()

    def _exit(self, module, inputs, output) -> None:
        self.sync()
        self.seconds += time.perf_counter() - self._start


def timed_evaluation(callback: FIDEvaluation, inception: ForwardTimer, generator: ForwardTimer, model: DCGAN, data) -> tuple[float, float, float]:
    """Seconds of one evaluation: (total, inside the Inception, inside the generator)."""
    inception.seconds = generator.seconds = 0.0
    inception.sync()
    start = time.perf_counter()
    callback.evaluate(model, data)
    inception.sync()
    return time.perf_counter() - start, inception.seconds, generator.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--num-samples", type=int, default=10_000)
    parser.add_argument("--num-real-samples", type=int, default=50_000)
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--inception-weights", help=f"the real {INCEPTION_WEIGHTS_FILE} (default: random weights)")
    args = parser.parse_args()
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        weights = args.inception_weights or save_random_inception(Path(tmp) / INCEPTION_WEIGHTS_FILE)
        kid_real_samples = min(10_000, args.num_real_samples)  # the callback's defaults, or fewer for small runs
        settings = dict(
            inception_weights=str(weights), num_samples=args.num_samples, num_real_samples=args.num_real_samples,
            kid_real_samples=kid_real_samples, kid_subset_size=min(1000, args.num_samples, kid_real_samples),
            batch_size=args.batch_size, cache_dir=str(Path(tmp) / "cache"),
        )
        model = DCGAN(data_shape=(1, 64, 64)).to(device)
        generator = ForwardTimer(model.generator, device)
        data = DSpritesDataModule(source="procedural")
        rows = []
        first = FIDEvaluation(**settings)
        inception = ForwardTimer(first.feature_extractor, device)
        rows.append(("cold", *timed_evaluation(first, inception, generator, model, data)))
        later_run = FIDEvaluation(**settings)
        inception = ForwardTimer(later_run.feature_extractor, device)
        rows.append(("warm, disk", *timed_evaluation(later_run, inception, generator, model, data)))
        rows.append(("warm, memory", *timed_evaluation(later_run, inception, generator, model, data)))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"FID+KID of {args.num_samples} samples against {args.num_real_samples} real, batch {args.batch_size}, {name}")
    print("| cache | total s | Inception forward s | generator s | rest s (data, metric compute) | outside the Inception | speed-up vs cold |")
    print("|---|---|---|---|---|---|---|")
    for label, total, inception, sampling in rows:
        rest = total - inception - sampling
        print(
            f"| {label} | {total:.1f} | {inception:.1f} | {sampling:.1f} | {rest:.1f} | {1 - inception / total:.1%} "
            f"| {rows[0][1] / total:.2f}x |"
        )


if __name__ == "__main__":
    main()
