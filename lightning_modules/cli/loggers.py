"""A W&B logger that never prompts for a login, never hangs without a network, and records what
W&B shows (its step is the generator updates of ``lightning_modules.training.step_logging``)."""

from __future__ import annotations

import logging
import netrc
import os
import socket
from urllib.parse import urlparse

from pytorch_lightning.loggers import WandbLogger as LightningWandbLogger
from pytorch_lightning.utilities import rank_zero_only

_log = logging.getLogger(__name__)
_OFFLINE_MODES = {"offline", "dryrun", "disabled"}


def offline_reason(timeout: float = 3.0) -> str | None:
    """Why W&B cannot log online here (no credentials, host unreachable), or None if it can."""
    url = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai"))
    host = url.hostname or "api.wandb.ai"
    if not (os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE") or _netrc_has(host)):
        return "no W&B login (WANDB_API_KEY or `wandb login`)"
    try:
        socket.create_connection((host, url.port or (443 if url.scheme != "http" else 80)), timeout=timeout).close()
    except OSError as error:
        return f"{host} is unreachable ({error.__class__.__name__})"
    return None


def _netrc_has(host: str) -> bool:
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


@rank_zero_only
def _warn_offline(reason: str, save_dir: str) -> None:
    _log.warning("W&B logging offline to %s: %s. Upload later with `wandb sync`.", save_dir, reason)


class WandbLogger(LightningWandbLogger):
    """Lightning's WandbLogger, offline (one warning line) when there is no login or no network.

    Offline, ``log_model`` still logs the checkpoints as artifacts: W&B records them in the run
    (staging a copy of each file under ``WANDB_DATA_DIR``) and ``wandb sync`` uploads them.

    Args:
        save_dir: Where the run's files go (made absolute). Unset: the CLI's run folder
            (``trainer.default_root_dir``), else the working directory.
        offline: Log offline regardless (also set by ``WANDB_MODE=offline``).
    """

    def __init__(self, save_dir: str | None = None, offline: bool = False, **kwargs) -> None:
        save_dir = save_dir or "."
        # wandb's service process outlives a run and resolves relative paths against its own
        # working directory, so a later run in the same process would land elsewhere.
        # Lightning refuses log_model offline, as if W&B could not keep artifacts until `wandb sync`: it can.
        super().__init__(save_dir=os.path.abspath(save_dir), offline=False, **kwargs)
        self._offline = offline or os.environ.get("WANDB_MODE") in _OFFLINE_MODES
        self._shown_save_dir = save_dir
        if self._wandb_init.get("anonymous") is None:
            del self._wandb_init["anonymous"]  # W&B warns that the setting does nothing, even unset

    @property
    def experiment(self):
        """The W&B run, started at first use (the CLI's start-up checks come first): offline, with
        one warning line, when there is no login or no network."""
        if self._experiment is None and rank_zero_only.rank == 0:
            if not self._offline and (reason := offline_reason()) is not None:
                self._offline = True
                _warn_offline(reason, self._shown_save_dir)
            # W&B looks for the git repository (whose commit it records) from here, and warns when it is absent
            os.makedirs(self._save_dir, exist_ok=True)
        return super().experiment

    @rank_zero_only
    def log_metrics(self, metrics, step: int | None = None) -> None:
        """Lightning's, with W&B's own step (``_step``) set to ``step`` (generator updates, as
        ``trainer/global_step``): what is logged at one step is one W&B row, and the rows of a
        resumed run continue those of the run it resumes, offline too, instead of restarting at 0."""
        if step is None or self._wandb_init.get("sync_tensorboard"):
            super().log_metrics(metrics, step)
            return
        if self._prefix:  # as Lightning's logger prefixes the keys
            metrics = {f"{self._prefix}{self.LOGGER_JOIN_CHAR}{key}": value for key, value in metrics.items()}
        self.experiment.log({**metrics, "trainer/global_step": step}, step=step)

    def resume_run(self, run_id: str) -> None:
        """Continue the W&B run ``run_id`` (a resumed training run's) instead of starting a new one,
        unless this logger was given an id of its own. Call before the run starts."""
        if self._id is not None or self._experiment is not None:
            if self.version != run_id:
                _log.warning("W&B: not continuing run %s of the checkpoint: this logger's run is %s", run_id, self.version)
            return
        self._id = self._wandb_init["id"] = run_id
        self._wandb_init["resume"] = "allow"
