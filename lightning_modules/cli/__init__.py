"""``python -m lightning_modules fit|validate|test|predict --config configs/X.yaml``."""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import logging
import os
import platform
import re
import sys
import warnings
from importlib import metadata
from difflib import get_close_matches
from pathlib import Path
from typing import Any, Optional

import torch
import wandb
import yaml
from jsonargparse import Namespace
from jsonargparse.typing import PositiveInt
from lightning_fabric.plugins import CheckpointIO
from pytorch_lightning import LightningDataModule, Trainer
from pytorch_lightning.callbacks import ModelCheckpoint, ProgressBar
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from pytorch_lightning.trainer.states import TrainerFn
from pytorch_lightning.utilities import rank_zero_info
from pytorch_lightning.utilities.imports import _RICH_AVAILABLE

import datamodules  # noqa: F401  (makes every datamodule selectable by class name)
from callbacks.progress import StepRunProgressBar
from lightning_modules.base import GenerativeModule
from lightning_modules.cli import moved
from lightning_modules.cli.loggers import WandbLogger
from lightning_modules.training.checkpoints import SafeCheckpointIO, check_written_by, read_checkpoint
from lightning_modules.training.strategies import gan_strategy_for, strategy_problem


class _WithoutLitLoggerTip(logging.Filter):
    """Lightning advertises its LitLogger platform on every trainer without one; no setting turns it off."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(_WithoutLitLoggerTip())
moved.install()  # configs written before a class moved still name it
# Deprecations inside Lightning's own code (its pytree helper), which a user cannot act on.
warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")


class UploadConfig(SaveConfigCallback):
    """Saves config.yaml in the run directory and uploads the full config to every logger, without
    credentials, and only once the run has passed every start-up check (data, model, checkpoint),
    so that a command that fails leaves the previous run's config.yaml as it was."""

    def __init__(self, parser, config: Namespace, *args, **kwargs) -> None:
        self.versions = software_versions()
        # config.yaml opens with them as comments, so it still parses as the config that ran
        parser.dump_header = [*(parser.dump_header or []), *(f"{name}: {version}" for name, version in self.versions.items())]
        super().__init__(parser, without_credentials(config), *args, **kwargs)

    def setup(self, trainer, pl_module, stage: str) -> None:
        """Deferred to the first loop start: the model's and data's checks run after the callbacks' setup."""

    def on_train_start(self, trainer, pl_module) -> None:
        super().setup(trainer, pl_module, trainer.state.fn)  # saves once, whichever loop starts first

    on_validation_start = on_test_start = on_predict_start = on_train_start

    def save_config(self, trainer, pl_module, stage: str) -> None:
        # as config.yaml has it: plain values (paths as strings), which every logger can store and read back
        config = yaml.safe_load(self.parser.dump(self.config, skip_unset=False))
        for logger in trainer.loggers:
            logger.log_hyperparams({"config": config, "versions": self.versions})


#: The distributions a run's numbers depend on, recorded with every run.
RECORDED_DISTRIBUTIONS = (
    "idgan-lightning", "torchvision", "pytorch-lightning", "torchmetrics", "torch-fidelity", "numpy", "scipy",
    "scikit-learn", "wandb", "jsonargparse", "pillow",
)


def software_versions() -> dict[str, str]:
    """Python's and torch's versions, each installed distribution of :data:`RECORDED_DISTRIBUTIONS`,
    and the CUDA and cuDNN versions torch was built with (when it was), so a user can tell which
    stack produced a number."""
    # torch's own version string carries the build's tag (+cu130, +cpu), which its metadata drops
    versions = {"python": platform.python_version(), "torch": str(torch.__version__)}
    for name in RECORDED_DISTRIBUTIONS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    if torch.version.cuda:
        versions["cuda"] = torch.version.cuda
    if torch.backends.cudnn.is_available():
        versions["cudnn"] = str(torch.backends.cudnn.version())
    return versions


_CREDENTIAL_NAME = re.compile(r"api_?key", re.IGNORECASE)


def without_credentials(value: Any) -> Any:
    """A copy of a config without its W&B credentials: entries named like an API key (a key passed
    in the logger's init args) and entries holding the environment's WANDB_API_KEY."""
    secret = os.environ.get("WANDB_API_KEY")

    def is_credential(name: str, item: Any) -> bool:
        return bool(_CREDENTIAL_NAME.search(name)) or bool(secret and isinstance(item, str) and secret in item)

    if isinstance(value, (Namespace, dict)):
        items = vars(value).items() if isinstance(value, Namespace) else value.items()
        kept = {name: without_credentials(item) for name, item in items if not is_credential(str(name), item)}
        return Namespace(**kept) if isinstance(value, Namespace) else kept
    if isinstance(value, list):
        return [without_credentials(item) for item in value if not is_credential("", item)]
    return value


# An init argument a class does not take, from a config file (also a nested one, "x.lr") or the command line.
_NOT_ACCEPTED = re.compile(r"class_path '(?P<class_path>[\w.]+)':\s+(?:Option '|unrecognized arguments: --)(?P<option>\w+)")


class ArgumentParser(LightningArgumentParser):
    """Lightning's parser; an argument a class does not take comes with the fix: the closest one it
    does. A config it prints (``--print_config``) or saves is the one that runs: with the settings
    the run derives (see :func:`run_settings`)."""

    def dump(self, cfg: Namespace, *args, **kwargs) -> str:
        if isinstance(cfg, Namespace) and "trainer" in cfg:
            cfg = moved.with_current_paths(cfg.clone())
            run_settings(cfg)
            cfg["checkpoint_every_n_train_steps"] = None  # in the checkpoint callbacks now, where a config may change it
        return super().dump(cfg, *args, **kwargs)

    def error(self, message: str, ex: Exception | None = None):
        if (unknown := _NOT_ACCEPTED.search(message)) is not None:
            message += _closest_arguments(_import_class(unknown["class_path"]), unknown["option"])
        super().error(message, ex)


#: Model arguments renamed, and what to write instead: when the models took one vocabulary
#: (data_shape for every datum, the discriminator for every GAN's second network, a WGAN's critic
#: included), and when the supervised-contrastive regulariser's settings became one group
#: (``contrastive``, :class:`~lightning_modules.training.contrastive.SupervisedContrastive`). A
#: class is told only of a rename to an argument it takes.
_CONTRASTIVE = "(the supervised-contrastive settings are one group now)"
RENAMED_ARGUMENTS = {
    "image_size": "data_shape: [channels, size, size]",
    "channels": "data_shape: [channels, size, size]",
    "critic_optimizer": "discriminator_optimizer",
    "critic_normalization": "discriminator_normalization",
    "contrastive_weight": f"contrastive: {{weight: ...}} {_CONTRASTIVE}",
    "contrastive_start_step": f"contrastive: {{start_step: ...}} {_CONTRASTIVE}",
    "num_pairs": f"contrastive: {{num_pairs: ...}} {_CONTRASTIVE}",
    "tau_positive": f"contrastive: {{tau_positive: ...}} {_CONTRASTIVE}",
    "tau_all": f"contrastive: {{tau_all: ...}} {_CONTRASTIVE}",
    "representation_dim": f"contrastive: {{representation_dim: ...}} {_CONTRASTIVE}",
    "contrastive_reduction": f"contrastive: {{reduction: ...}} {_CONTRASTIVE}",
    "contrastive_optimizer": f"contrastive: {{optimizer: {{lr: ...}}}} {_CONTRASTIVE}",
}


def _closest_arguments(cls: type, name: str) -> str:
    # Our classes pass **kwargs on to their bases, so the arguments are those of the whole MRO.
    taken = [
        parameter.name
        for base in cls.__mro__
        if "__init__" in vars(base)
        for parameter in list(inspect.signature(base.__init__).parameters.values())[1:]
        if parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
    ]
    renamed = RENAMED_ARGUMENTS.get(name, "")
    if issubclass(cls, GenerativeModule) and re.match(r"\w+", renamed) and re.match(r"\w+", renamed)[0] in taken:
        return f"\n  {cls.__name__} takes no '{name}': it was renamed; write {renamed}."
    close = get_close_matches(name, taken, n=3)
    if close:
        return f"\n  {cls.__name__} takes no '{name}'; did you mean {' or '.join(repr(c) for c in close)}?"
    return f"\n  {cls.__name__} takes no '{name}'; it takes {', '.join(taken)}."


#: What every run shares, read before the config a command names: a run's config holds what differs.
DEFAULTS = Path(__file__).resolve().parents[2] / "configs" / "defaults.yaml"


class CLI(LightningCLI):
    """LightningCLI for every ``GenerativeModule`` and ``LightningDataModule`` (by class path), with
    the checks of :meth:`preflight` before anything starts, :class:`SafeCheckpointIO`, gan_ddp where
    torch's DDP would fail, and resumes that continue their W&B run. Errors in the inputs raise
    :class:`InputError` (``main`` prints them, exit status 2)."""

    def __init__(self, args=None, run: bool = True) -> None:
        defaults = {"default_config_files": [str(DEFAULTS)]}
        super().__init__(
            GenerativeModule,
            LightningDataModule,
            parser_class=ArgumentParser,
            # each command's parser reads the defaults; without commands (run=False) the one parser does
            parser_kwargs={command: defaults for command in ("fit", "validate", "test", "predict")} if run else defaults,
            subclass_mode_model=True,
            subclass_mode_data=True,
            save_config_callback=UploadConfig,
            save_config_kwargs={"overwrite": True},
            auto_configure_optimizers=False,
            args=args,
            run=run,
        )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # jsonargparse cannot address one entry of trainer.callbacks from the command line
        # (`--trainer.callbacks.1.init_args...` is refused), so the checkpoint cadence has a flag.
        parser.add_argument(
            "--checkpoint_every_n_train_steps",
            type=Optional[PositiveInt],
            default=None,
            help="Sets every_n_train_steps of the config's checkpoint callbacks (RunCheckpoint, ModelCheckpoint).",
        )
        parser.add_argument(
            "--run_per_seed",
            type=bool,
            default=False,
            help="Puts the run in its own folder, <default_root_dir>/seed_<seed_everything> (its checkpoints, config.yaml, "
            "scores.csv and W&B files), names its W&B run <name>-seed_<seed> and groups it under <name> "
            "(`python -m lightning_modules.cli.seeds` sets it).",
        )

    def _set_seed(self) -> None:
        """Lightning's, without its "Seed set to N" line here: it would come before :meth:`preflight`'s
        message on a refused command. :meth:`instantiate_trainer` says it once the checks have passed."""
        seed_log = logging.getLogger("lightning_fabric.utilities.seed")
        level = seed_log.level
        seed_log.setLevel(logging.WARNING)
        try:
            super()._set_seed()
        finally:
            seed_log.setLevel(level)

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        run_settings(config)
        if config.get("run_per_seed"):
            _one_folder_per_seed(config)

    def _parse_ckpt_path(self) -> None:
        """The config (file and command line) is what runs, whichever way --ckpt_path names the checkpoint.

        Lightning replaces the model's arguments with the hyper-parameters of a --ckpt_path *file*
        (not of ``last``), the command line's included: a lower learning rate or a gradient clip
        given on resume was silently dropped, and config.yaml recorded the checkpoint's values. Here
        the checkpoint gives the state only; settings that shape the networks must match it, which
        loading checks (``GenerativeModule.on_load_checkpoint``), naming the setting.
        """

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """After :meth:`preflight`, the trainer, with :class:`SafeCheckpointIO` unless the config names a
        CheckpointIO, and with gan_ddp where the config asks for torch's DDP or leaves the strategy to
        Lightning on several devices (see :func:`gan_strategy_for`)."""
        trainer_config = self._get(self.config_init, "trainer", default={})
        self.preflight(trainer_config)
        if (seed := self._get(self.config, "seed_everything")) is not False:
            rank_zero_info(f"Seed set to {seed}")
        plugins = trainer_config.get("plugins") or []
        plugins = plugins if isinstance(plugins, list) else [plugins]
        if not any(isinstance(plugin, CheckpointIO) for plugin in plugins):
            plugins = [*plugins, SafeCheckpointIO()]
        if (strategy := gan_strategy_for(trainer_config)) is not None:
            rank_zero_info(
                f"Strategy {strategy}: torch's DDP wrapper (strategy '{trainer_config.get('strategy', 'auto')}') expects every "
                f"backward to reach every network; {strategy} averages the gradients of each network that steps."
            )
            kwargs = {"strategy": strategy, **kwargs}
        callbacks = trainer_config.get("callbacks") or []
        callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
        if _RICH_AVAILABLE and trainer_config.get("enable_progress_bar") is not False and not any(
            isinstance(callback, ProgressBar) for callback in callbacks
        ):  # the bar Lightning would add, without its "Epoch 0/-2"
            kwargs = {"callbacks": [*callbacks, StepRunProgressBar()], **kwargs}
        return super().instantiate_trainer(plugins=plugins, **kwargs)

    def preflight(self, trainer_config: Namespace) -> None:
        """Every input the command needs, checked before the trainer, the logger or any process starts:
        the strategy, the --ckpt_path file, the data files (read, so damage shows), what the model
        loads (a stage-one checkpoint) and what the callbacks load (Inception weights). Raises one
        :class:`InputError` with every problem found."""
        problems = []
        if (problem := strategy_problem(trainer_config.get("strategy", "auto"))) is not None:
            problems.append(problem)
        ckpt_path = self._get(self.config, "ckpt_path")
        problems += self._ckpt_path_problems(ckpt_path)
        stage = self.subcommand or "fit"  # without a subcommand (run=False) the caller fits next, as a rule
        if hasattr(self.datamodule, "check_inputs"):
            problems += self.datamodule.check_inputs(stage)
        problems += self.model.check_inputs(self.datamodule, resuming=ckpt_path is not None)
        callbacks = trainer_config.get("callbacks") or []
        for callback in callbacks if isinstance(callbacks, list) else [callbacks]:
            # Lightning's callbacks have none; ours score the model in fit, validate and test
            if hasattr(callback, "check_inputs") and stage != "predict":
                problems += callback.check_inputs(self.model, self.datamodule)
        if problems:
            raise InputError(list(dict.fromkeys(problems)))  # two callbacks on one missing file: said once

    def _ckpt_path_problems(self, ckpt_path: str | None) -> list[str]:
        """A --ckpt_path file that is missing, unreadable or another model's."""
        if not ckpt_path or ckpt_path in _CKPT_PATH_NAMES or "://" in ckpt_path:
            return []  # names are resolved by the trainer: see _check_resolved_checkpoint
        if not Path(ckpt_path).is_file():
            return [
                f"--ckpt_path '{ckpt_path}' does not exist (relative paths start at {Path.cwd()}). Pass an existing "
                f"checkpoint file, or --ckpt_path last to resume from the newest last.ckpt in the config's "
                f"checkpoint folder."
            ]
        return self._checkpoint_problems(ckpt_path)

    def _checkpoint_problems(self, path: str) -> list[str]:
        try:
            check_written_by(read_checkpoint(path), type(self.model), path)
        except ValueError as error:
            return [str(error)]
        return []

    def _check_resolved_checkpoint(self) -> None:
        """A --ckpt_path name (last, hpc) resolved by the trainer: the file it names is checked as
        a path is, before the run starts (the trainer is built: its checkpoint folder is known)."""
        requested = self.config[self.subcommand].get("ckpt_path")
        if requested and requested not in _CKPT_PATH_NAMES:
            return  # a path: checked by preflight
        path = self._resolved_checkpoint_path()
        if path and Path(path).is_file() and (problems := self._checkpoint_problems(str(path))):
            raise InputError(problems)

    def _resolved_checkpoint_path(self) -> str | None:
        # Lightning resolves "last"/"hpc" only inside trainer.fit/validate/...; its resolver is private
        # (the one use of it; pyproject.toml bounds pytorch-lightning to the versions it is tested with).
        fn = {"fit": TrainerFn.FITTING, "validate": TrainerFn.VALIDATING, "test": TrainerFn.TESTING, "predict": TrainerFn.PREDICTING}
        return self.trainer._checkpoint_connector._parse_ckpt_path(
            fn[self.subcommand], self.config[self.subcommand].get("ckpt_path"), model_provided=True, model_connected=False
        )

    def before_validate(self) -> None:
        self._check_resolved_checkpoint()

    before_test = before_predict = before_validate

    def _prepare_subcommand_kwargs(self, subcommand: str) -> dict[str, Any]:
        """predict's output is the files its writer saves batch by batch (``callbacks.PredictionGrid``):
        unless ``--return_predictions true``, Lightning does not also keep every batch in memory (a
        test split of samples, inputs and reconstructions: gigabytes for CelebA)."""
        kwargs = super()._prepare_subcommand_kwargs(subcommand)
        if subcommand == "predict" and kwargs.get("return_predictions") is None:
            kwargs["return_predictions"] = False
        return kwargs

    def before_fit(self) -> None:
        """A resumed run continues the W&B run its checkpoint was written under."""
        self._check_resolved_checkpoint()
        checkpoint = self._resume_checkpoint()
        run_id = checkpoint.get("wandb_run_id") if checkpoint else None
        if run_id:
            for logger in self.trainer.loggers:
                if isinstance(logger, WandbLogger):
                    logger.resume_run(run_id)

    def _resume_checkpoint(self) -> dict | None:
        """The checkpoint ``fit`` will resume from (``--ckpt_path`` path, "last", or SLURM's "hpc"),
        memory-mapped, or None."""
        path = self._resolved_checkpoint_path()
        if not path:
            return None
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception:  # unreadable: fit's own loading reports it
            return None


def _entries(value: Any) -> list[Namespace]:
    """The class entries (class_path + init_args) of a config value that holds one or a list."""
    return [entry for entry in (value if isinstance(value, list) else [value]) if isinstance(entry, Namespace)]


def run_settings(config: Namespace) -> None:
    """The settings a run derives, written into its config: the cadence of its checkpoint callbacks
    (``checkpoint_every_n_train_steps``, when given), and the paths it takes from its folder,
    ``trainer.default_root_dir`` (``runs/<name>``: the run's name, written once), where the config
    leaves them out: a W&B logger's run ``name`` (the folder's name) and ``save_dir`` (the folder),
    and a checkpoint callback's ``dirpath`` (``<folder>/checkpoints``, fixed, so that ``--ckpt_path
    last`` finds the last run's checkpoint)."""
    every = config.get("checkpoint_every_n_train_steps")
    for callback in _entries(config.get("trainer.callbacks")):
        if every is not None and issubclass(_import_class(callback.class_path), ModelCheckpoint):
            callback.init_args.every_n_train_steps = int(every)  # a plain int: config.yaml records it
    root = config.get("trainer.default_root_dir")
    if not root:
        return
    for logger in _entries(config.get("trainer.logger")):
        if issubclass(_import_class(logger.class_path), WandbLogger):
            arguments = logger.init_args
            if not arguments.get("name"):
                arguments.name = Path(root).name
            if not arguments.get("save_dir"):
                arguments.save_dir = str(root)
    for callback in _entries(config.get("trainer.callbacks")):
        if issubclass(_import_class(callback.class_path), ModelCheckpoint) and not callback.init_args.get("dirpath"):
            callback.init_args.dirpath = str(Path(root) / "checkpoints")


def _one_folder_per_seed(config: Namespace) -> None:
    """``--run_per_seed``: every path of the run (default_root_dir, the loggers' save_dir, the
    checkpoint folders) moves into ``<default_root_dir>/seed_<S>``; each W&B run is named
    ``<name>-seed_<S>`` in the group ``<name>`` (unless the config names a group)."""
    seed = config.get("seed_everything")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InputError([f"--run_per_seed names the run folder after seed_everything, which is {seed!r}: pass an integer, "
                          f"e.g. --seed_everything 0 (true draws one)."])
    root = Path(config.get("trainer.default_root_dir") or ".")
    folder = root / f"seed_{seed}"

    def moved(path: str | None) -> str:
        path = Path(path or root)
        inside = path == root or root in path.parents
        return str(folder / path.relative_to(root) if inside else path / f"seed_{seed}")

    config["trainer.default_root_dir"] = str(folder)
    for logger in _entries(config.get("trainer.logger")):
        arguments = logger.init_args
        if "save_dir" in arguments:
            arguments.save_dir = moved(arguments.save_dir)
        if issubclass(_import_class(logger.class_path), WandbLogger):
            name = arguments.get("name") or root.name
            arguments.group = arguments.get("group") or name
            arguments.name = f"{name}-seed_{seed}"
    for callback in _entries(config.get("trainer.callbacks")):
        if issubclass(_import_class(callback.class_path), ModelCheckpoint) and callback.init_args.get("dirpath"):
            callback.init_args.dirpath = moved(callback.init_args.dirpath)


#: --ckpt_path values Lightning resolves itself rather than naming a file.
_CKPT_PATH_NAMES = ("last", "best", "hpc", "registry")


def _import_class(class_path: str) -> type:
    module, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module), name)


class InputError(Exception):
    """Inputs a run cannot start with (missing or damaged files, a strategy that cannot work), each
    problem one message naming the value, the files expected and the fix. :func:`main` prints them
    as the parser prints a bad config value: no traceback, exit status 2."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


#: Set to 1 for the traceback of an input error too.
DEBUG_VARIABLE = "IDGAN_DEBUG"


def resolved_config(config: str | Path, *overrides: str) -> dict:
    """The config ``fit --config config overrides`` runs, as ``--print_config`` prints it: configs/defaults.yaml,
    the file and the overrides composed, with the settings the run derives (a shipped file holds only
    what differs from the defaults)."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        try:
            CLI(args=["fit", "--config", str(config), *overrides, "--print_config"])
        except SystemExit as exit:
            if exit.code not in (0, None):
                raise
    return yaml.safe_load(printed.getvalue())


def main(args=None) -> None:
    """One CLI command; its W&B run ends with it (so a second command in the same process, as in a
    notebook, starts a run of its own instead of appending to this one)."""
    try:
        CLI(args=args)
    except InputError as error:
        if os.environ.get(DEBUG_VARIABLE, "0") not in ("", "0"):
            raise
        problems = "\n".join(f"  - {problem}".replace("\n", "\n    ") for problem in error.problems)
        print(f"error: cannot start: {len(error.problems)} problem{'s' * (len(error.problems) > 1)} with the inputs\n"
              f"{problems}\n(set {DEBUG_VARIABLE}=1 for the traceback)", file=sys.stderr)
        raise SystemExit(2) from None
    except BaseException:
        if wandb.run is not None:
            wandb.finish(exit_code=1)
        raise
    if wandb.run is not None:
        wandb.finish()
