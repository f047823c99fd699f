"""Training throughput of our DCGAN against a plain PyTorch loop, measured in the same process.

All train the identical networks (built once, then copied) on the identical DataLoader of
dSprites batches, with the same batch size, optimizers and algorithm (the loop of
pytorch/examples' dcgan: D on real and detached fake, then G through D). Two plain loops: as in
pytorch/examples, which also computes D's weight gradients in the G step and throws them away, and
with D's ``requires_grad`` switched off there, the same work our ``optimize("generator")`` does:
the second ratio is the framework's own overhead. Runs alternate, and the median of ``--repeats``
is reported, so drift of the machine hits all alike.

    python -m bench.throughput                      # 64 px, batch 64, CPU
    python -m bench.throughput --device cuda --steps 200
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from bench.timing import StepTimer
from datamodules import DSpritesDataModule
from lightning_modules import DCGAN
from lightning_modules.losses import discriminator_loss, nonsaturating_generator_loss


def dsprites_loader(batch_size: int, batches: int) -> DataLoader:
    ground_truth = DSpritesDataModule(source="procedural", batch_size=batch_size).ground_truth
    factors = ground_truth.sample_factors(batch_size * batches, torch.Generator().manual_seed(0))
    images = ground_truth.images_for(factors)
    return DataLoader(TensorDataset(images, torch.zeros(len(images), dtype=torch.long)), batch_size, shuffle=True, drop_last=True)


def plain_loop(model: DCGAN, loader: DataLoader, steps: int, warmup: int, device: str, toggle: bool) -> float:
    generator, discriminator = model.generator.to(device), model.discriminator.to(device)
    config_g, config_d = model.optimized_networks["generator"], model.optimized_networks["discriminator"]
    opt_g, opt_d = config_g.build(generator.parameters()), config_d.build(discriminator.parameters())
    batches = iter(loader)
    for step in range(warmup + steps):
        if step == warmup:
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        try:
            real, _ = next(batches)
        except StopIteration:
            batches = iter(loader)
            real, _ = next(batches)
        real = real.to(device)
        fake = generator(torch.randn(real.shape[0], model.latent_dim, device=device))
        opt_d.zero_grad(set_to_none=True)
        discriminator_loss(discriminator(real), discriminator(fake.detach())).backward()
        opt_d.step()
        opt_g.zero_grad(set_to_none=True)
        discriminator.requires_grad_(not toggle)
        nonsaturating_generator_loss(discriminator(fake)).backward()
        discriminator.requires_grad_(True)
        opt_g.step()
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def lightning_run(model: DCGAN, loader: DataLoader, steps: int, warmup: int, device: str) -> float:
    timer = StepTimer(warmup)
    trainer = pl.Trainer(
        accelerator=device, devices=1, max_steps=warmup + steps, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[timer],
    )
    trainer.fit(model, train_dataloaders=loader)
    return timer.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args()

    torch.manual_seed(0)
    template = DCGAN(latent_dim=100, data_shape=(1, args.image_size, args.image_size), width=args.width)
    loader = dsprites_loader(args.batch_size, batches=8)
    seconds: dict[str, list[float]] = {"plain": [], "plain_toggled": [], "ours": []}
    for _ in range(args.repeats):
        for toggle, name in ((False, "plain"), (True, "plain_toggled")):
            seconds[name].append(plain_loop(copy.deepcopy(template), loader, args.steps, args.warmup, args.device, toggle))
        seconds["ours"].append(lightning_run(copy.deepcopy(template), loader, args.steps, args.warmup, args.device))
    rate = {name: 1 / statistics.median(times) for name, times in seconds.items()}
    print(f"DCGAN {args.image_size}px, batch {args.batch_size}, width {args.width}, {args.device}, "
          f"torch threads {torch.get_num_threads()}, median of {args.repeats} x {args.steps} steps")
    print(f"plain PyTorch loop (pytorch/examples)  : {rate['plain']:7.2f} steps/s")
    print(f"plain PyTorch loop, D toggled off in G : {rate['plain_toggled']:7.2f} steps/s")
    print(f"lightning_modules DCGAN                : {rate['ours']:7.2f} steps/s")
    print(f"ratio ours / pytorch/examples loop     : {rate['ours'] / rate['plain']:7.3f}")
    print(f"ratio ours / same-work loop            : {rate['ours'] / rate['plain_toggled']:7.3f}")


if __name__ == "__main__":
    main()
