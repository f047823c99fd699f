"""Training throughput of our models against plain PyTorch loops of the same work, in one process.

Each model at its dSprites config's settings (64 px, batch 64): DCGAN (``dcgan_dsprites.yaml``),
the β-VAE of stage one (``beta_vae_dsprites.yaml``), IDGAN-SC stage two (``idgan_sc_dsprites.yaml``:
width 32, m = 384 pairs, its distiller an untrained β-VAE of the same shape) and InfoGAN-CR
(``infogan_cr_dsprites.yaml`` with CR on from the first step, the costlier part of its run). Ours
runs through Lightning (``Trainer.fit``); the plain loop runs the same networks (copied from the
same initial model), the same losses, data and optimizers, with the same networks frozen in each
update (``requires_grad``), and nothing else: no Lightning, no non-finite checks, no logging.
The ratio ours / plain is the framework's cost.

Variants (``--variants``), each applied to both loops where it applies: ``default`` (the configs as
they are), ``no_sync`` (ours: ``nonfinite_sync: logging_steps``), ``fused`` (fused Adam),
``channels_last``, ``device_data`` (dSprites rendered on the device: ``render_on_device``),
``compile`` (torch.compile, mode "default"), ``cudagraphs`` (mode "reduce-overhead", CUDA only) and
``all`` (every switch; "reduce-overhead" on CUDA), and ``bf16`` (``precision: bf16-mixed``; the plain
loop under ``torch.autocast``: other numerics, so not in ``all``). Runs alternate ours/plain, and the median of
``--repeats`` is reported, so drift of the machine hits both alike.

    python -m bench.throughput --device cpu --steps 3 --warmup 1 --repeats 1
    python -m bench.throughput --device cuda --steps 300 --warmup 30          # bench/gpu.sh
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import pytorch_lightning as pl
import torch

from bench.timing import StepTimer
from datamodules import DSpritesDataModule
from lightning_modules import DCGAN, IDGANSC, BetaVAE, InfoGANCR
from lightning_modules.base import GenerativeModule
from lightning_modules.losses import (
    discriminator_loss,
    gaussian_nll,
    nonsaturating_generator_loss,
    supervised_contrastive_loss,
)
from lightning_modules.training.latents import gaussian_posterior
from lightning_modules.training.speed import compile_networks, to_channels_last

VARIANTS = ("default", "no_sync", "fused", "channels_last", "device_data", "bf16", "compile", "cudagraphs", "all")
MODELS = ("dcgan", "beta_vae", "idgan_sc", "infogan_cr")


def switches(variant: str, device: str) -> dict:
    """The speed switches of a variant (README "Speed on a GPU")."""
    every = {"no_sync": True, "fused": True, "channels_last": True, "device_data": True,
             "compile": "reduce-overhead" if device == "cuda" else "default"}
    if variant == "all":
        return every
    if variant == "compile":
        return {"compile": "default"}
    if variant == "cudagraphs":
        return {"compile": "reduce-overhead"}
    if variant == "bf16":
        return {"bf16": True}
    return {} if variant == "default" else {variant: every[variant]}


def distiller_checkpoint(directory: str) -> str:
    """An untrained stage-one β-VAE of the paper's dSprites shape, as a checkpoint (same work as a trained one)."""
    path = Path(directory) / "distiller.ckpt"
    if not path.exists():
        trainer = pl.Trainer(accelerator="cpu", max_steps=0, logger=False, enable_checkpointing=False,
                             enable_progress_bar=False, enable_model_summary=False)
        trainer.strategy.connect(BetaVAE(latent_dim=10, data_shape=(1, 64, 64), width=32))
        trainer.save_checkpoint(path)
    return str(path)


def build(name: str, directory: str, **model_switches) -> GenerativeModule:
    """The model at its dSprites config's settings, with the speed switches given."""
    if name == "dcgan":
        return DCGAN(latent_dim=10, data_shape=(1, 64, 64), width=64, **model_switches)
    if name == "beta_vae":
        return BetaVAE(latent_dim=10, beta=8.0, data_shape=(1, 64, 64), width=32, **model_switches)
    if name == "idgan_sc":
        return IDGANSC(distiller_checkpoint=distiller_checkpoint(directory), code_dim=10, noise_dim=5,
                       data_shape=(1, 64, 64), width=32, num_pairs=384, representation_dim=128, **model_switches)
    return InfoGANCR(code_dim=5, noise_dim=5, data_shape=(1, 64, 64), cr_weight=2.0, cr_start_step=0, **model_switches)


def value_range(name: str) -> tuple[float, float]:
    return (-1.0, 1.0) if name == "dcgan" else (0.0, 1.0)


# ----------------------------------------------------------------------------- the plain loops
def plain_step(name: str, model: GenerativeModule, optimizers: dict[str, torch.optim.Optimizer]) -> Callable[[torch.Tensor], None]:
    """One training iteration of ``model``'s algorithm written as a plain PyTorch loop."""

    def update(loss: torch.Tensor, *networks: str) -> None:
        for network in networks:
            optimizers[network].zero_grad(set_to_none=True)
        loss.backward()
        for network in networks:
            optimizers[network].step()

    def trainable(*networks: str) -> None:
        for network in optimizers:
            getattr(model, network).requires_grad_(network in networks)

    if name == "dcgan":
        def step(real):
            fake = model.generator(torch.randn(len(real), model.latent_dim, device=real.device))
            trainable("discriminator")
            update(discriminator_loss(model.discriminator(real), model.discriminator(fake.detach())), "discriminator")
            trainable("generator")
            update(nonsaturating_generator_loss(model.discriminator(fake)), "generator")
    elif name == "beta_vae":
        def step(x):
            reconstruction, kl = model.negative_elbo_terms(x, None)
            update(reconstruction + model.beta * kl, "encoder", "decoder")
    elif name == "idgan_sc":
        def step(real):
            codes = model.sample_codes(real)
            fake = model.generator(torch.cat([codes, torch.randn(len(real), model.noise_dim, device=real.device)], 1))
            trainable("discriminator", "info_head")
            features = model.discriminator.features(fake.detach())
            d_loss = discriminator_loss(model.discriminator(real), model.discriminator.head(features))
            update(d_loss + model.info_weight * gaussian_nll(codes, *gaussian_posterior(model.info_head, features)),
                   "discriminator", "info_head")
            trainable("generator", "contrastive_head")
            features = model.discriminator.features(fake)
            g_adv = nonsaturating_generator_loss(model.discriminator.head(features))
            info = gaussian_nll(codes, *gaussian_posterior(model.info_head, features))
            dims, representations = model.contrastive_pairs(codes)
            sc = supervised_contrastive_loss(representations, dims, model.tau_positive, model.tau_all, model.contrastive_reduction)
            update(g_adv + model.info_weight * info + model.contrastive_weight * sc, "generator", "contrastive_head")
    else:
        def step(real):
            latent = model.sample_latent(len(real))
            codes, fake = latent[:, : model.code_dim], model.generator(latent)
            trainable("discriminator")
            real_logits, _ = model.discriminator(real)
            fake_logits, q_fake = model.discriminator(fake.detach())
            update(discriminator_loss(real_logits, fake_logits) + model.info_weight * gaussian_nll(codes, *q_fake), "discriminator")
            trainable("generator", "cr_discriminator")
            update(model.generator_loss(codes, fake) + model.cr_weight * model.cr_loss(len(fake))[0], "generator", "cr_discriminator")
    return step


def plain_run(name: str, model: GenerativeModule, datamodule: DSpritesDataModule, steps: int, warmup: int,
              device: str, variant: dict) -> float:
    """Seconds per iteration of the plain loop (after ``warmup`` iterations)."""
    model = model.to(device)
    networks = [getattr(model, network) for network in model.optimized_networks]
    if variant.get("channels_last"):
        to_channels_last(networks)
    if variant.get("compile"):
        compile_networks(networks, variant["compile"])
    optimizers = {network: dataclasses.replace(config, fused=bool(variant.get("fused"))).build(getattr(model, network).parameters())
                  for network, config in model.optimized_networks.items()}
    step = plain_step(name, model, optimizers)
    batches = iter(datamodule.train_dataloader())
    for i in range(warmup + steps):
        if i == warmup:
            synchronize(device)
            start = time.perf_counter()
        batch = datamodule.transfer_batch_to_device(next(batches), torch.device(device), 0)  # renders on the device for device_data
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bool(variant.get("bf16"))):  # as Lightning's bf16-mixed
            step(batch[0])
    synchronize(device)
    return (time.perf_counter() - start) / steps


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


# ------------------------------------------------------------------------------------ ours
class SyncCounter(pl.Callback):
    """On a GPU, counts the host synchronisations from the first timed batch to the end of training,
    Lightning's loop between the batches included (``torch.cuda.set_sync_debug_mode("warn")``:
    each one warns)."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.syncs, self.batches = warmup, 0, 0
        self._catcher = None

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if trainer.fit_loop.epoch_loop.total_batch_idx == self.warmup:
            self._catcher = warnings.catch_warnings(record=True)
            self._recorded = self._catcher.__enter__()
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.batches += self._catcher is not None

    def on_train_end(self, trainer, module):
        if self._catcher is not None:
            torch.cuda.set_sync_debug_mode("default")
            self._catcher.__exit__(None, None, None)
            self.syncs = sum("synchroniz" in str(w.message) for w in self._recorded)


def lightning_run(model: GenerativeModule, datamodule: DSpritesDataModule, steps: int, warmup: int, device: str,
                  count_syncs: bool = False, precision: str = "32-true") -> tuple[float, float | None]:
    """(seconds per iteration, host synchronisations per iteration inside the training batches
    when counted: CUDA only)."""
    timer = StepTimer(warmup)
    counter = SyncCounter(warmup) if count_syncs and device == "cuda" else None
    trainer = pl.Trainer(
        accelerator=device, devices=1, max_steps=warmup + steps, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[timer] + ([counter] if counter else []),
        log_every_n_steps=50, precision=precision,
    )
    trainer.fit(model, datamodule)
    return timer.seconds, (counter.syncs / max(counter.batches, 1) if counter else None)


def model_switches(variant: dict) -> dict:
    settings = {"nonfinite_sync": "logging_steps"} if variant.get("no_sync") else {}
    if variant.get("channels_last"):
        settings["channels_last"] = True
    if variant.get("compile"):
        settings["compile"] = variant["compile"]
    return settings


def measure(name: str, variant_name: str, args: argparse.Namespace, directory: str) -> tuple[float, float, float | None]:
    """(ours, plain) iterations per second, the median of ``args.repeats`` alternating runs, and
    our host synchronisations per iteration (``--count-syncs``, CUDA)."""
    variant = switches(variant_name, args.device)
    seconds: dict[str, list[float]] = {"ours": [], "plain": []}
    syncs = None
    for repeat in range(args.repeats):
        for loop in ("ours", "plain"):
            torch.manual_seed(repeat)
            model = build(name, directory, **(model_switches(variant) if loop == "ours" else {}))
            if variant.get("fused"):
                model.optimized_networks = {k: dataclasses.replace(c, fused=True) for k, c in model.optimized_networks.items()}
            datamodule = DSpritesDataModule(source="procedural", batch_size=args.batch_size, value_range=value_range(name),
                                            render_on_device=bool(variant.get("device_data")))
            datamodule.setup("fit")
            if loop == "ours":
                run_seconds, syncs = lightning_run(model, datamodule, args.steps, args.warmup, args.device, args.count_syncs,
                                                   "bf16-mixed" if variant.get("bf16") else "32-true")
                seconds[loop].append(run_seconds)
            else:
                if name == "idgan_sc":
                    model.setup("fit")  # reads the distiller, as Lightning's setup does for ours
                seconds[loop].append(plain_run(name, model, datamodule, args.steps, args.warmup, args.device, variant))
    return 1 / statistics.median(seconds["ours"]), 1 / statistics.median(seconds["plain"]), syncs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--variants", nargs="+", default=None, choices=VARIANTS,
                        help="default: all but the compiled ones and bf16 on cpu (inductor compiles for minutes there), all on cuda")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=30, help="timed iterations per run")
    parser.add_argument("--warmup", type=int, default=5, help="untimed iterations first (compilation, CUDA graph capture)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--count-syncs", action="store_true",
                        help="CUDA: also count our host synchronisations per training batch (torch.cuda.set_sync_debug_mode)")
    args = parser.parse_args()
    variants = args.variants or [v for v in VARIANTS if args.device == "cuda" or v not in ("bf16", "compile", "cudagraphs", "all")]
    if args.device == "cpu" and "cudagraphs" in variants:
        parser.error("--variants cudagraphs needs --device cuda (CUDA graphs)")

    load = os.getloadavg()[0]
    print(f"device {args.device} ({torch.cuda.get_device_name() if args.device == 'cuda' else f'{os.cpu_count()} CPUs'}), "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}, batch {args.batch_size}, "
          f"median of {args.repeats} x {args.steps} iterations after {args.warmup}, load average {load:.1f}")
    print("| model | variant | ours it/s | plain it/s | ours / plain |" + (" our syncs / it |" if args.count_syncs else ""))
    print("|---|---|---|---|---|" + ("---|" if args.count_syncs else ""))
    with tempfile.TemporaryDirectory() as directory:
        for name in args.models:
            for variant in variants:
                try:
                    ours, plain, syncs = measure(name, variant, args, directory)
                except Exception as error:  # one failing variant (e.g. a compile error) leaves the table going
                    print(f"| {name} | {variant} | failed: {type(error).__name__}: {str(error).splitlines()[0][:150]} | | |", flush=True)
                    continue
                counted = "" if not args.count_syncs else f" {syncs:.2f} |" if syncs is not None else " - |"
                print(f"| {name} | {variant} | {ours:.2f} | {plain:.2f} | {ours / plain:.3f} |{counted}", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
