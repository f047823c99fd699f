"""The plumbing every model shares, written once.

A model subclasses :class:`GenerativeModule` (or :class:`AdversarialModule` for GANs), builds its
networks as attributes, names which of them are trained with which :class:`OptimizerConfig` in
``self.optimized_networks``, and writes ``training_step`` as its paper's algorithm::

    with self.optimize("discriminator") as step:
        step(discriminator_loss(self.discriminator(real), self.discriminator(fake.detach())))

``optimize`` makes only that network's parameters take gradients, and ``step`` zeroes, backprops,
averages the gradients across processes (DDP), clips and steps that one optimizer.

This file is the model contract only; what training does around it lives in
``lightning_modules.training``: gradient averaging (``strategies``), the non-finite policy
(``nonfinite``), EMA (``ema``), AMP loss scaling (``amp``), data checks (``data_checks``) and what a
checkpoint holds besides the weights (``checkpoints``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal, Union

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from jsonargparse.typing import OpenUnitInterval, PositiveFloat, PositiveInt
from pytorch_lightning.callbacks import BasePredictionWriter
from pytorch_lightning.trainer.states import TrainerFn
from torch import Tensor
from torch.optim.lr_scheduler import LRScheduler
from torch.optim.swa_utils import AveragedModel

from lightning_modules.nets import (
    build_discriminator,
    build_generator,
    check_data_shape,
)
from lightning_modules.nets.dcgan import Normalization
from lightning_modules.training.amp import one_loss_scale_update
from lightning_modules.training.checkpoints import (
    check_network_shapes,
    check_written_by,
    plain_hyperparameter,
    restore_rng_states,
    run_state,
)
from lightning_modules.training.data_checks import data_mismatches
from lightning_modules.training.ema import exponential_moving_average
from lightning_modules.training.nonfinite import (
    NonfiniteAction,
    NonfinitePolicy,
    NonfiniteSync,
    nonfinite_gradients,
)
from lightning_modules.training.optim import OptimizerConfig
from lightning_modules.training.speed import (
    CompileMode,
    compile_networks,
    to_channels_last,
)
from lightning_modules.training.step_logging import GeneratorUpdateLogging
from lightning_modules.training.strategies import average_gradients, check_wrapped_model

# Lightning warns (with a code sample) that under manual optimization a step checkpoint holds the
# weights after that step's update: exactly the state a resume must start from.
warnings.filterwarnings("ignore", message="Using ModelCheckpoint with manual optimization and every_n_train_steps")
# validation_step serves the validate command; fit scores the model with the evaluation callbacks, on
# their step cadence, and has no validation loop (the datamodules offer no val loader to it).
warnings.filterwarnings("ignore", message="You defined a `validation_step` but have no `val_dataloader`")


#: Sizes of the images the conv nets are built for.
ImageSize = Literal[28, 32, 64]
#: The shape of an image, [channels, size, size], for models whose networks are conv nets only.
ImageShape = tuple[PositiveInt, ImageSize, ImageSize]
#: The shape of one datum: an image, or [features] for vector data (MLPs); checked as the config is parsed.
DataShape = Union[ImageShape, tuple[PositiveInt]]


class GenerativeModule(pl.LightningModule):
    """Manual multi-optimizer training, EMA of the sampling network and the sampling API.

    Args:
        gradient_clip_norm: Clip each network's gradient norm to this value before its step.
        ema_decay: Keep an exponential moving average of the sampling network with this decay
            (e.g. 0.999); samples and metrics then use the averaged weights.
        nonfinite_loss: What a NaN or infinite loss, or a NaN or infinite gradient of a stepped
            network (a finite loss can have one), does, detected at the update it happens in (on any
            process) and logged with the step number and what went bad: "stop" skips that update,
            saves a checkpoint of the last good state (``nonfinite-step=N.ckpt`` beside the other
            checkpoints) at the end of the batch and stops; "skip" skips that update and goes on
            (``lightning_modules.training.nonfinite``). Under float16 AMP non-finite gradients are
            the GradScaler's: a loss-scale overflow makes them, and the scaler skips that step and
            lowers the scale.
        nonfinite_sync: When the host learns of a non-finite update. "every_update": one read of
            the flags per update (a host synchronisation each; exact: a skipped update is no
            generator step, and "stop" stops after that batch). "logging_steps": none in the step:
            the update is skipped on the device (weights, optimizer states and EMA untouched; it
            still counts as a step and moves the schedules, as torch's GradScaler does), the host
            reads the record at each logged row (``log_every_n_steps``) and at the end of fit, then
            warns and, under "stop", stops there, every update since the bad one skipped too (the
            checkpoint holds the last good weights and optimizer states, at the later step).
        compile: torch.compile the trained networks in fit with this mode ("default";
            "reduce-overhead" adds CUDA graphs on a GPU); None: eager. Results within float
            rounding of eager; the first steps compile (seconds on a GPU, a minute or more on a CPU).
        compile_backend: torch.compile's backend ("inductor"; "aot_eager" traces without code
            generation, for debugging).
        channels_last: The trained networks' weights in channels-last memory order (NHWC: cuDNN's
            fastest for convolutions on a GPU); the activations follow.
    """

    #: The network whose optimizer steps count as Lightning's ``global_step`` (so ``max_steps``
    #: and step cadences count generator updates, the iteration count papers report).
    step_network: str = "generator"
    #: The network that maps a latent to data; EMA and ``sample`` use it.
    sampling_network: str = "generator"
    #: The range of ``generate``'s output, which image callbacks and metrics rely on.
    output_range: tuple[float, float] = (-1.0, 1.0)
    #: Values swept by ``traverse``: from -span to +span (the prior's bulk for N(0, I)).
    traversal_span: float = 2.0

    def __init__(
        self,
        *,
        gradient_clip_norm: PositiveFloat | None = None,
        ema_decay: OpenUnitInterval | None = None,
        nonfinite_loss: NonfiniteAction = "stop",
        nonfinite_sync: NonfiniteSync = "every_update",
        compile: CompileMode | None = None,
        compile_backend: str = "inductor",
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.save_hyperparameters()
        for key, value in self.hparams.items():
            self.hparams[key] = plain_hyperparameter(value)
        self.gradient_clip_norm = gradient_clip_norm
        self.ema_decay = ema_decay
        self.nonfinite = NonfinitePolicy(nonfinite_loss, nonfinite_sync)
        self.compile_mode, self.compile_backend, self.channels_last = compile, compile_backend, channels_last
        self._rng_states_to_restore: dict | None = None
        #: network attribute name -> its optimizer settings, filled in by the subclass.
        self.optimized_networks: dict[str, OptimizerConfig] = {}
        self.sampling_network_ema: AveragedModel | None = None
        self._checkpoint_step: int | None = None  # global_step of the checkpoint the weights came from

    @property
    def attached_trainer(self) -> pl.Trainer | None:
        """The trainer, or None outside one (Lightning's public ``trainer`` raises instead; its
        private ``_trainer`` is read here only)."""
        return self._trainer

    @property
    def nonfinite_updates(self) -> int:
        """Updates skipped for a non-finite loss or gradient so far (``nonfinite_loss``)."""
        return self.nonfinite.skipped

    # ----------------------------------------------------------------- the model's interface
    latent_dim: int
    #: Shape of one datum, checked against the datamodule's ``data_shape`` at start-up.
    data_shape: tuple[int, ...]

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``n`` latents from the prior (standard normal unless a model says otherwise)."""
        return torch.randn(n, self.latent_dim, generator=generator, device=self._generator_device(generator))

    def generate(self, latent: Tensor) -> Tensor:
        """Map latents to data with the sampling network (its EMA when enabled)."""
        return self.sampler()(latent)

    def sampler(self) -> torch.nn.Module:
        """The sampling network, or its EMA when enabled."""
        if self.sampling_network_ema is not None:
            return self.sampling_network_ema.module
        return getattr(self, self.sampling_network)

    # ------------------------------------------------------------------------- sampling API
    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` samples from the model, in ``output_range``, generated in eval mode."""
        with self.evaluating():
            return self.generate(self.sample_latent(n, generator).to(self.device))

    def traversal_dims(self) -> Sequence[int]:
        """The latent dimensions a traversal sweeps by default: all of them up to 32 (a VAE's whole
        code, e.g. the CelebA β-VAE's 20 dims), the first 32 of a wider noise vector; models
        whose structured code is only part of the latent override this."""
        return range(min(self.latent_dim, 32))

    @torch.no_grad()
    def traverse(
        self,
        latent: Tensor | None = None,
        dims: Sequence[int] | None = None,
        steps: int = 7,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Images as one latent dimension sweeps while the others stay fixed.

        Returns a tensor ``[len(dims), steps, *data_shape]``: row ``i`` sweeps ``dims[i]`` of
        ``latent`` (one latent vector, drawn from the prior when omitted) over
        ``linspace(-traversal_span, traversal_span, steps)``.
        """
        if latent is None:
            latent = self.sample_latent(1, generator)[0]
        dims = list(self.traversal_dims() if dims is None else dims)
        values = torch.linspace(-self.traversal_span, self.traversal_span, steps)
        latents = latent.to(self.device).expand(len(dims), steps, -1).clone()
        for row, dim in enumerate(dims):
            latents[row, :, dim] = values.to(latents)
        with self.evaluating():
            images = self.generate(latents.flatten(0, 1))
        return images.view(len(dims), steps, *images.shape[1:])

    @torch.no_grad()
    def reconstruction_error(self, x: Tensor) -> Tensor:
        """Mean squared error of ``reconstruct(x)`` (models with an encoder), in eval mode as the
        Reconstructions callback shows it: a diagnostic that leaves batch-norm statistics alone."""
        with self.evaluating():
            return torch.nn.functional.mse_loss(self.reconstruct(x), x)

    # ------------------------------------------------------- validate, test, predict: held-out data
    def held_out_scores(self, batch: Any) -> dict[str, Tensor]:
        """The model's own numbers on a batch of held-out data, batch means that ``validate`` and
        ``test`` average over the split (as ``val/<name>``, ``test/<name>``): the reconstruction
        error (MSE) of a model with an encoder; a model with a likelihood adds its bound. The
        scores of samples (FID, disentanglement, mixture coverage) are the evaluation callbacks'."""
        if not callable(getattr(self, "reconstruct", None)):
            return {}
        return {"reconstruction_error": F.mse_loss(self.reconstruct_batch(batch), batch[0])}

    def encode_batch(self, batch: Any) -> Tensor:
        """Codes of a data batch ``(x, y)``: ``encode(x)`` (a conditional encoder also takes y)."""
        return self.encode(batch[0])

    def reconstruct_batch(self, batch: Any) -> Tensor:
        """Reconstructions of a data batch ``(x, y)``: ``reconstruct(x)`` (a conditional model's also take y)."""
        return self.reconstruct(batch[0])

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._log_held_out("val", batch)

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._log_held_out("test", batch)

    def _log_held_out(self, split: str, batch: Any) -> None:
        scores = self.held_out_scores(batch)
        if scores:  # means over the split, weighted by batch size, across processes
            self.log_dict({f"{split}/{name}": value for name, value in scores.items()}, batch_size=len(batch[0]), sync_dist=True)

    def predict_step(self, batch: Any, batch_idx: int) -> dict[str, Tensor]:
        """For each batch of the predict data (the datamodule's test split): as many ``samples``,
        from a seed of the batch's index (the same files each time, other noise on each process),
        and for a model with an encoder the ``inputs``, their ``codes`` and ``reconstructions``."""
        x = batch[0]
        return {"samples": self.sample(len(x), self._predict_generator(batch_idx)), **self.encoder_predictions(batch)}

    def encoder_predictions(self, batch: Any) -> dict[str, Tensor]:
        """``inputs``, ``codes`` and ``reconstructions`` of a data batch, those the model has."""
        predictions = {}
        if callable(getattr(self, "encode", None)):
            predictions.update(inputs=batch[0], codes=self.encode_batch(batch))
        if callable(getattr(self, "reconstruct", None)):
            predictions.update(inputs=batch[0], reconstructions=self.reconstruct_batch(batch))
        return predictions

    def _predict_generator(self, batch_idx: int) -> torch.Generator:
        world_size = self.trainer.world_size if self.attached_trainer is not None else 1
        rank = self.trainer.global_rank if self.attached_trainer is not None else 0
        return torch.Generator().manual_seed(batch_idx * world_size + rank)

    def configure_callbacks(self) -> list[pl.Callback]:
        """``predict`` writes what it returns to files (``callbacks.PredictionGrid``), unless the
        trainer has a prediction writer of its own."""
        trainer = self.attached_trainer
        if trainer is None or trainer.state.fn != TrainerFn.PREDICTING:
            return []
        if any(isinstance(callback, BasePredictionWriter) for callback in trainer.callbacks):
            return []
        from callbacks.images import PredictionGrid

        return [PredictionGrid()]

    @property
    def trained_steps(self) -> int:
        """The generator updates behind the current weights: the trainer's count in fit, the
        checkpoint's under ``validate``/``test``/``predict`` (which restore only the weights, so
        Lightning's ``global_step`` reads 0 there). Their logged rows sit at this step."""
        trainer = self.attached_trainer
        if trainer is not None and trainer.state.fn == TrainerFn.FITTING:
            return trainer.global_step
        if self._checkpoint_step is not None:
            return self._checkpoint_step
        return trainer.global_step if trainer is not None else 0

    # ------------------------------------------------------------------------ the stepping
    def configure_optimizers(self) -> tuple[list[torch.optim.Optimizer], list[LRScheduler]]:
        """One optimizer per entry of ``optimized_networks`` (its ``OptimizerConfig`` over that
        network's parameters), and the learning-rate schedules they ask for.

        Raises:
            RuntimeError: a model whose ``__init__`` left ``optimized_networks`` empty.
        """
        if not self.optimized_networks:
            raise RuntimeError(f"{type(self).__name__} must fill self.optimized_networks in __init__")
        optimizers, schedulers = [], []
        for name, config in self.optimized_networks.items():
            optimizers.append(config.build(getattr(self, name).parameters(), self._optimizer_state_on_device))
            scheduler = config.build_schedule(optimizers[-1], self.trainer.max_steps, name)
            if scheduler is not None:
                schedulers.append(scheduler)
        return optimizers, schedulers

    @property
    def _optimizer_state_on_device(self) -> bool:
        """On a GPU, "logging_steps" undoes a skipped update on the device, step counters included."""
        return self.nonfinite.sync == "logging_steps" and self.device.type != "cpu"

    def optimizer_of(self, network: str) -> pl.core.optimizer.LightningOptimizer:
        """The optimizer of ``network`` (a key of ``optimized_networks``), as Lightning wraps it."""
        optimizers = self.optimizers()
        optimizers = optimizers if isinstance(optimizers, list) else [optimizers]
        return optimizers[list(self.optimized_networks).index(network)]

    @contextmanager
    def optimize(self, *networks: str) -> Iterator[Callable[[Tensor], None]]:
        """Within the block only these networks' parameters take gradients; yields ``step(loss)``.

        The forward pass belongs inside the block, so that the other networks build no
        gradient graph for their own weights (a generator step still backprops through D).
        Several networks minimising one loss (IDGAN-SC's G and E) each keep their own optimizer.
        """
        optimizers = {name: self.optimizer_of(name) for name in networks}

        def step(loss: Tensor) -> None:
            for optimizer in optimizers.values():
                optimizer.zero_grad(set_to_none=True)
            self.manual_backward(loss)
            nonfinite = (~torch.isfinite(loss.detach())).float().reshape(1)
            for optimizer in optimizers.values():
                nonfinite = average_gradients(optimizer.optimizer, nonfinite, self.trainer.strategy)
            scaler = getattr(self.trainer.precision_plugin, "scaler", None)
            if scaler is None:
                # On the averaged gradients, the ones each optimizer would step with: the same on
                # every process, so the decision is too. A scaler's loss-scaled gradients are
                # non-finite whenever the scale overflows; it checks them itself (found_inf).
                nonfinite = torch.cat([nonfinite, *(nonfinite_gradients(o.optimizer, nonfinite) for o in optimizers.values())])
            keep = None  # apply the update: decided on the host ("every_update") or on the device
            if self.nonfinite.sync == "every_update":
                loss_flag, *gradient_flags = nonfinite.tolist()  # the one synchronisation of the step
                if loss_flag or any(gradient_flags):
                    bad_gradients = [name for name, flag in zip(optimizers, gradient_flags) if flag]
                    self._skip_nonfinite_update(networks, loss, bad_gradients if not loss_flag else [])
                    return
            elif scaler is None:  # under a GradScaler its own found_inf skips the step
                keep = self.nonfinite.record(nonfinite, networks, loss, self.trainer.global_step)
            with one_loss_scale_update(scaler), self.nonfinite.applied_where(keep, [o.optimizer for o in optimizers.values()]):
                for name, optimizer in optimizers.items():
                    if name == self.step_network:
                        optimizer.step()
                    else:
                        # Same path as LightningOptimizer.step (precision plugin, hooks) but not counted
                        # in global_step, which counts only the step network's updates.
                        self.trainer.strategy.optimizer_step(optimizer.optimizer, closure=lambda: None)
            if self.step_network in optimizers:  # a global step: every network's schedule moves on
                for scheduler in self.trainer.lr_scheduler_configs:
                    scheduler.scheduler.step()
                if self.nonfinite.sync == "logging_steps" and self._logging_step():
                    self._read_nonfinite_record()
            if self.sampling_network in optimizers and self.sampling_network_ema is not None:
                self.sampling_network_ema.update_parameters(getattr(self, self.sampling_network), applied=keep)

        trained = {p for optimizer in optimizers.values() for group in optimizer.param_groups for p in group["params"]}
        frozen = [
            p
            for optimizer in self.trainer.optimizers
            for group in optimizer.param_groups
            for p in group["params"]
            if p not in trained and p.requires_grad
        ]
        for parameter in frozen:
            parameter.requires_grad_(False)
        try:
            yield step
        finally:
            for parameter in frozen:
                parameter.requires_grad_(True)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # Lightning's precision plugin calls this after unscaling the AMP gradients: clipping
        # before the step would bound the loss-scaled norm, i.e. a step smaller by the loss scale.
        if self.gradient_clip_norm is not None:
            self.clip_gradients(optimizer, gradient_clip_val=self.gradient_clip_norm, gradient_clip_algorithm="norm")

    def _skip_nonfinite_update(self, networks: Sequence[str], loss: Tensor, bad_gradients: Sequence[str]) -> None:
        """Skip this update (see ``NonfinitePolicy.skip``); under "stop", training stops after the batch."""
        for name in networks:
            self.optimizer_of(name).zero_grad(set_to_none=True)
        stopping = self.nonfinite.skip(networks, loss, bad_gradients, self.trainer.global_step)
        self.log("train/nonfinite_updates", float(self.nonfinite.skipped))
        if stopping:
            self.trainer.should_stop = True  # known before the batch's callbacks: the checkpoint callback saves the end state

    def log(self, name: str, value: Any, *args: Any, **kwargs: Any) -> None:
        # Lightning makes a Python number (a learning rate, a loss weight) a tensor by copying it from
        # the host, which on a GPU waits for the queued work; a fill on the device does not.
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = torch.full((), value, dtype=torch.get_default_dtype(), device=self.device)
        super().log(name, value, *args, **kwargs)

    def _logging_step(self) -> bool:
        """Whether this generator update's count gets a logged row (``log_every_n_steps``)."""
        every = self.trainer.log_every_n_steps
        return bool(every) and self.trainer.global_step % every == 0

    def _read_nonfinite_record(self) -> None:
        """("logging_steps") The device's record of skipped updates to the host: warn, log the count
        and, under "stop", stop after this batch (every update since the first bad one was skipped)."""
        if self.nonfinite.read(self.trainer.global_step):
            self.trainer.should_stop = True
        if self.nonfinite.skipped:
            self.log("train/nonfinite_updates", float(self.nonfinite.skipped))

    def on_train_end(self) -> None:
        if self.nonfinite.sync == "logging_steps":  # what was skipped since the last logged row
            self.nonfinite.read(self.trainer.global_step)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        # Logged at every batch; the logger connector writes the rows of the batches at its cadence
        # (generator updates, ``GeneratorUpdateLogging``), as it does for every other value.
        self.log_dict(
            {f"train/lr_{name}": float(optimizer.param_groups[0]["lr"]) for name, optimizer in zip(self.optimized_networks, self.trainer.optimizers)}
        )
        self.nonfinite.save_stop_checkpoint(self.trainer)

    # ------------------------------------------------------------------------- lifecycle
    def _build_ema(self) -> None:
        if self.ema_decay is not None and self.sampling_network_ema is None:
            self.sampling_network_ema = exponential_moving_average(getattr(self, self.sampling_network), self.ema_decay)

    def setup(self, stage: str) -> None:
        """Builds the EMA copy, installs the generator-update logging, and checks the model against
        the trainer's datamodule (:func:`~lightning_modules.training.data_checks.data_mismatches`).

        Raises:
            ValueError: the data's shape or value range differs from the model's (every mismatch named).
        """
        self._build_ema()
        networks = [getattr(self, name) for name in self.optimized_networks]
        if self.channels_last:
            to_channels_last(networks)
        if stage == "fit" and self.compile_mode is not None:  # after the EMA's copy: that one stays eager
            compile_networks(networks, self.compile_mode, self.compile_backend)
        if self.attached_trainer is not None:  # every logged row at generator updates, the step callbacks use
            GeneratorUpdateLogging.install(self.attached_trainer)
        datamodule = self.attached_trainer.datamodule if self.attached_trainer is not None else None
        if datamodule is not None and (problems := data_mismatches(self, datamodule)):
            raise ValueError("\n".join(problems))

    def check_inputs(self, datamodule: pl.LightningDataModule | None, resuming: bool = False) -> list[str]:
        """What keeps this model from running on ``datamodule`` (and, in models that load files,
        what is wrong with those), each one message naming the setting and the fix. ``resuming``:
        a checkpoint will give the state. The CLI asks before the run starts."""
        return data_mismatches(self, datamodule) if datamodule is not None else []

    def on_fit_start(self) -> None:
        check_wrapped_model(self.trainer.strategy)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint.update(run_state(self))

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        path = self.attached_trainer.ckpt_path if self.attached_trainer is not None else None
        check_written_by(checkpoint, type(self), path)
        self._build_ema()  # the EMA copy must exist before its weights are loaded
        check_network_shapes(checkpoint, self, path)
        self._rng_states_to_restore = checkpoint.get("rng_states")
        self._checkpoint_step = checkpoint.get("global_step")

    def on_train_start(self) -> None:
        # After Lightning has restored the optimizers and schedulers: the config's settings win
        # over those in their state (a resume with a lower learning rate takes effect).
        schedulers = [config.scheduler for config in self.trainer.lr_scheduler_configs]
        for name, optimizer in zip(self.optimized_networks, self.trainer.optimizers):
            scheduler = next((s for s in schedulers if s.optimizer is optimizer), None)
            self.optimized_networks[name].apply_to_restored(optimizer, scheduler, self.trainer.max_steps, self._optimizer_state_on_device)
        # Restored here rather than on load: building the data loaders in between draws from the
        # global RNG, which the uninterrupted run did before the checkpoint was written.
        states, self._rng_states_to_restore = self._rng_states_to_restore, None
        if states is None:
            return
        restore_rng_states(states)

    # ----------------------------------------------------------------------------- helpers
    def _generator_device(self, generator: torch.Generator | None) -> torch.device:
        # A user's torch.Generator fixes the device noise is drawn on (CPU generators give
        # the same noise on every machine); the result is moved to the model's device.
        return generator.device if generator is not None else self.device

    @contextmanager
    def evaluating(self) -> Iterator[None]:
        """Eval mode within the block (batch norm uses running statistics), then back as it was."""
        was_training = self.training
        self.eval()
        try:
            yield
        finally:
            self.train(was_training)


class AdversarialModule(GenerativeModule):
    """A GAN: adds the discriminator (critic) steps per generator step.

    Args:
        n_critic: Discriminator/critic updates per generator update; each uses a fresh real batch.
    """

    def __init__(self, *, n_critic: PositiveInt = 1, **kwargs) -> None:
        super().__init__(**kwargs)
        self.n_critic = n_critic
        self._round_batches = 0  # batches of the current round so far; 0 once a batch has ended the round

    def critic_updates(self, generator_update: int) -> int:
        """Discriminator updates in the round that ends with generator update ``generator_update``
        (counted from 0): ``n_critic``, unless a model's schedule says otherwise (WGAN's reference)."""
        return self.n_critic

    def generator_turn(self) -> bool:
        """Whether this batch ends a round of discriminator steps, so the generator steps too."""
        return self._round_batches == 0

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # Decided once per batch, before the checkpoint of this batch is written (at its end), so
        # that the round's position resumes with it.
        self._round_batches += 1
        if self._round_batches >= self.critic_updates(self.global_step):
            self._round_batches = 0

    def log_discriminator(self, d_loss: Tensor, real_logits: Tensor, fake_logits: Tensor, **more: Tensor) -> None:
        """Logs, on the progress bar too, a logistic D's loss and its mean probabilities D(x) of the
        data and D(G(z)) of the fakes (``train/d_loss``, ``train/d_real``, ``train/d_fake``: the usual
        diagnostics), and ``more`` as ``train/<name>``."""
        self.log_dict(
            {
                "train/d_loss": d_loss,
                "train/d_real": real_logits.detach().sigmoid().mean(),
                "train/d_fake": fake_logits.detach().sigmoid().mean(),
                **{f"train/{name}": value for name, value in more.items()},
            },
            prog_bar=True,
        )

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["discriminator_round_batches"] = self._round_batches

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        self._round_batches = checkpoint.get("discriminator_round_batches", 0)


class TwoPlayerGAN(AdversarialModule):
    """A GAN of two networks built for ``data_shape`` (conv nets for images, MLPs for vectors): the
    ``generator`` (latent -> data) and a one-logit ``discriminator`` (a WGAN's critic), each with its
    optimizer. The defaults are DCGAN's (Radford et al. 2016), which LSGAN and f-GAN build on; a
    model whose paper sets other values declares them in its own signature.

    Args:
        latent_dim: Size of the noise vector z ~ N(0, I).
        data_shape: Shape of one datum: [channels, size, size] (size 28, 32 or 64) or [features].
        width: Feature maps of the conv layers next to the image (doubling away from it), or the
            MLPs' hidden units.
        discriminator_normalization: D's normalization ("batch", "layer", "spectral": Miyato et al.
            2018, or "none").
        generator_optimizer: G's optimizer (DCGAN: Adam, lr 2e-4, β1 0.5).
        discriminator_optimizer: D's optimizer (DCGAN: Adam, lr 2e-4, β1 0.5).
    """

    def __init__(
        self,
        *,
        latent_dim: PositiveInt = 100,
        data_shape: DataShape = (3, 64, 64),
        width: PositiveInt = 64,
        discriminator_normalization: Normalization = "batch",
        generator_optimizer: OptimizerConfig = OptimizerConfig(lr=2e-4, betas=(0.5, 0.999)),
        discriminator_optimizer: OptimizerConfig = OptimizerConfig(lr=2e-4, betas=(0.5, 0.999)),
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.latent_dim = latent_dim
        self.data_shape = check_data_shape(data_shape)
        self.generator = build_generator(latent_dim, self.data_shape, width)
        self.discriminator = build_discriminator(self.data_shape, width, normalization=discriminator_normalization)
        self.optimized_networks = {"discriminator": discriminator_optimizer, "generator": generator_optimizer}
