"""The checkpoint folder says what it holds, through the real CLI on the shipped configs (shrunk):
``last.ckpt`` is always the newest state of the run, the state at the end of fit is always on disk,
no step's checkpoint or evaluation is produced twice (n_critic > 1 included), and a resume from any
checkpoint the run writes ends on the uninterrupted run's weights.

(A real SIGTERM in a subprocess, then ``--ckpt_path last``: test_preemption.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from pytorch_lightning.utilities.exceptions import SIGTERMException

from lightning_modules.cli import main
from tests.helpers import shrunk_ring_config

pytestmark = pytest.mark.slow  # runs of the real CLI


def fit(config: Path, *args: str) -> None:
    main(["fit", "--config", str(config), *args])


def steps_in_folder(tmp_path: Path) -> dict[str, int]:
    """Each file of the checkpoint folder and the global_step inside it."""
    folder = tmp_path / "checkpoints"
    return {p.name: torch.load(p, weights_only=True)["global_step"] for p in sorted(folder.glob("*.ckpt"))}


def periodic_steps(tmp_path: Path) -> list[int]:
    return [int(line) for line in (tmp_path / "periodic_steps").read_text().split()]


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state_dict"]


def assert_same_weights(expected: dict, actual: dict) -> None:
    assert expected.keys() == actual.keys()
    different = [key for key in expected if not torch.equal(expected[key], actual[key])]
    assert not different, f"{len(different)} of {len(expected)} tensors differ: {different[:4]}"


def test_the_final_state_is_on_disk_when_the_run_ends_off_the_checkpoint_grid(tmp_path):
    """max_steps 6, checkpoints every 4: the end-of-fit evaluation describes step 6, and so must last.ckpt."""
    fit(shrunk_ring_config(tmp_path, "lsgan_ring", every_n_train_steps=4, periodic_every=4, max_steps=6))
    assert steps_in_folder(tmp_path) == {"epoch=0-step=4.ckpt": 4, "last.ckpt": 6}
    assert periodic_steps(tmp_path) == [4, 6]


def test_the_final_state_is_on_disk_when_the_run_ends_by_max_epochs(tmp_path):
    fit(shrunk_ring_config(tmp_path, "lsgan_ring", every_n_train_steps=3, periodic_every=3, max_steps=-1, max_epochs=2))
    assert steps_in_folder(tmp_path) == {"epoch=0-step=3.ckpt": 3, "epoch=1-step=6.ckpt": 6, "last.ckpt": 8}
    assert periodic_steps(tmp_path) == [3, 6, 8]


def test_n_critic_resume_neither_rewrites_nor_reevaluates_the_step_it_resumed_at(tmp_path):
    """WGAN with n_critic 2: step 2 is made by batch 4; batch 5 of the resumed run is a critic-only
    batch at global_step 2, which must not save or evaluate step 2 again."""
    config = shrunk_ring_config(tmp_path, "wgan_ring", every_n_train_steps=2, periodic_every=2, max_steps=2)
    fit(config)
    assert steps_in_folder(tmp_path) == {"epoch=0-step=2.ckpt": 2, "last.ckpt": 2}
    step_two = (tmp_path / "checkpoints" / "epoch=0-step=2.ckpt").read_bytes()

    fit(config, "--ckpt_path=last", "--trainer.max_steps=4")
    assert steps_in_folder(tmp_path) == {"epoch=0-step=2.ckpt": 2, "epoch=1-step=4.ckpt": 4, "last.ckpt": 4}
    assert (tmp_path / "checkpoints" / "epoch=0-step=2.ckpt").read_bytes() == step_two
    assert periodic_steps(tmp_path) == [2, 4]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict[str, torch.Tensor]:
    """LSGAN on the ring, 8 steps (two epochs of 4 batches) in one run."""
    tmp_path = tmp_path_factory.mktemp("uninterrupted")
    fit(shrunk_ring_config(tmp_path, "lsgan_ring", every_n_train_steps=1000, max_steps=8))
    return weights(tmp_path / "checkpoints" / "last.ckpt")


@pytest.mark.parametrize(
    "first_run",
    [
        pytest.param(["--trainer.max_steps=4"], id="max_steps-on-an-epoch-boundary"),
        pytest.param(["--trainer.max_steps=3"], id="max_steps-mid-epoch"),
        pytest.param(["--trainer.max_steps=-1", "--trainer.max_epochs=1"], id="max_epochs"),
    ],
)
def test_resuming_from_the_end_of_fit_checkpoint_is_exact(tmp_path, uninterrupted, first_run):
    config = shrunk_ring_config(tmp_path, "lsgan_ring", every_n_train_steps=1000, max_steps=8)
    fit(config, *first_run)
    fit(config, "--ckpt_path=last", "--trainer.max_steps=8", "--trainer.max_epochs=-1")
    assert steps_in_folder(tmp_path) == {"last.ckpt": 8}
    assert_same_weights(uninterrupted, weights(tmp_path / "checkpoints" / "last.ckpt"))


@pytest.mark.parametrize("batch", [2, 4], ids=["mid-epoch", "last-batch-of-an-epoch"])
def test_resuming_from_a_preemption_checkpoint_is_exact(tmp_path, uninterrupted, batch):
    """A SIGTERM during the last batch of an epoch stops the run only after Lightning has closed the
    epoch; the checkpoint must still resume at the batch after the last one trained on."""
    config = shrunk_ring_config(tmp_path, "lsgan_ring", every_n_train_steps=1000, max_steps=8)
    with pytest.raises(SIGTERMException):
        fit(config, "--trainer.callbacks+=tests.probes.PreemptAfterBatch", f"--trainer.callbacks.batch={batch}")
    assert steps_in_folder(tmp_path) == {"last.ckpt": batch}
    fit(config, "--ckpt_path=last")
    assert steps_in_folder(tmp_path) == {"last.ckpt": 8}
    assert_same_weights(uninterrupted, weights(tmp_path / "checkpoints" / "last.ckpt"))


def test_a_new_run_in_a_used_folder_writes_last_ckpt(tmp_path):
    """Stage two, latent constraints and predict read last.ckpt: it must be this run's, not the previous one's."""
    config = shrunk_ring_config(tmp_path, "lsgan_ring", every_n_train_steps=1000, max_steps=3)
    fit(config)
    fit(config, "--trainer.max_steps=2")  # a fresh run, not a resume
    assert steps_in_folder(tmp_path) == {"last.ckpt": 2}


def test_after_a_nonfinite_stop_last_ckpt_holds_the_last_good_state_and_resumes(tmp_path):
    """The non-finite-loss message's way out: resume from last.ckpt with other settings."""
    config = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu", "max_steps": 6, "logger": False, "enable_progress_bar": False,
            "enable_model_summary": False, "default_root_dir": str(tmp_path),
            "callbacks": [{"class_path": "callbacks.RunCheckpoint",
                           "init_args": {"dirpath": str(tmp_path / "checkpoints"), "every_n_train_steps": 4}}],
        },
        "model": {"class_path": "tests.probes.PoisonedRegression"},  # NaN loss in batch 3 (step 2)
        "data": {"class_path": "tests.helpers.RandomImages"},
    }
    (tmp_path / "input.yaml").write_text(yaml.safe_dump(config))
    fit(tmp_path / "input.yaml")
    assert steps_in_folder(tmp_path) == {"last.ckpt": 2, "nonfinite-step=2.ckpt": 2}
    assert_same_weights(weights(tmp_path / "checkpoints" / "nonfinite-step=2.ckpt"), weights(tmp_path / "checkpoints" / "last.ckpt"))

    fit(tmp_path / "input.yaml", "--ckpt_path=last", "--model.init_args.gradient_clip_norm=1.0")
    assert steps_in_folder(tmp_path) == {"epoch=0-step=4.ckpt": 4, "last.ckpt": 6, "nonfinite-step=2.ckpt": 2}
