"""The progress bar of every CLI run."""

from __future__ import annotations

from pytorch_lightning.callbacks import RichProgressBar


class StepRunProgressBar(RichProgressBar):
    """Lightning's rich progress bar, without a negative epoch total in step-based runs.

    With ``max_steps`` and no ``max_epochs``, Lightning sets ``max_epochs`` to -1 (no bound) and its
    rich bar (2.6) writes ``max_epochs - 1`` as the total: "Epoch 0/-2". Fixed upstream in
    Lightning-AI/pytorch-lightning#21924 (Lightning 2.7); this class goes when pyproject's bound
    reaches 2.7. The CLI uses it where Lightning would pick its rich bar (rich installed, no progress
    bar in the config); tqdm's bar prints no total and is left as it is.
    """

    def _get_train_description(self, current_epoch: int) -> str:
        if self.trainer.max_epochs is None or self.trainer.max_epochs >= 0:
            return super()._get_train_description(current_epoch)
        return f"{f'Epoch {current_epoch}':{len(self.validation_description)}}"  # padded as Lightning's
