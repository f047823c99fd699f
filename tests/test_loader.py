"""The resumable loader: its two-number position reproduces the uninterrupted batch sequence."""

import pytest
import torch

from datamodules.loader import ResumableDataLoader

DATA = torch.arange(40)


def batches(loader, n=None):
    out = []
    for batch in loader:
        out.append(batch.tolist())
        if n is not None and len(out) == n:
            break
    return out


def epoch(loader, number):
    loader.sampler.set_epoch(number)  # as Lightning does at every epoch start
    return batches(loader)


@pytest.mark.parametrize("taken", [0, 1, 3, 5])
def test_a_loader_restored_mid_epoch_continues_with_the_next_batch(taken):
    uninterrupted = ResumableDataLoader(DATA, batch_size=8, shuffle=True, seed=3)
    expected = epoch(uninterrupted, 0) + epoch(uninterrupted, 1)

    first = ResumableDataLoader(DATA, batch_size=8, shuffle=True, seed=3)
    seen = batches(first, taken) if taken else []
    state = first.state_dict()
    assert state == ({"epoch": 0, "batches_taken": taken} if taken < 5 else {"epoch": 1, "batches_taken": 0})

    resumed = ResumableDataLoader(DATA, batch_size=8, shuffle=True, seed=3)
    resumed.load_state_dict(state)
    seen += batches(resumed)
    if taken < 5:
        seen += epoch(resumed, 1)
    assert seen == expected


def test_the_order_is_a_permutation_per_epoch_drawn_from_seed_and_epoch():
    loader = ResumableDataLoader(DATA, batch_size=8, shuffle=True, seed=3, drop_last=True)
    torch.manual_seed(0)
    first = epoch(loader, 0)
    torch.manual_seed(1)  # the global RNG plays no part
    assert epoch(loader, 0) == first
    assert sorted(sum(first, [])) == DATA.tolist()
    assert epoch(loader, 1) != first
    assert epoch(ResumableDataLoader(DATA, batch_size=8, shuffle=True, seed=4), 0) != first
    assert epoch(ResumableDataLoader(DATA, batch_size=8), 0) == [DATA[i : i + 8].tolist() for i in range(0, 40, 8)]
