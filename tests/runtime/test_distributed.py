"""Data-parallel training of one site in 2 processes (gloo, CPU), started as ``torch.distributed.run`` starts them."""

import os
import socket
import time

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from builders import tumour_case
from monai.data import Dataset

from fedbrats.runtime import distributed
from fedbrats.runtime.data.loaders import make_loader, rank_share
from fedbrats.runtime.engine import SegmentationEngine
from fedbrats.runtime.errors import BratsDataError
from fedbrats.runtime.settings import TrainSettings

WORLD = 2
BATCH = 2
"""Crops per rank and step; one process alone takes ``WORLD * BATCH``."""
STEPS = 2
TRAINING = {
    "crop": [32, 32, 32],
    "init_filters": 8,
    "num_threads": 1,
    "cache_rate": 1.0,
    "learning_rate": 1e-3,
    "loss": "dice_bce",
    "dropout": 0.0,
    "vae_weight": 0.0,
}
"""No dropout and no VAE loss: the VAE branch draws noise in every training step."""


def cases(n=WORLD * BATCH):
    """``n`` fixed 32^3 crops (4 modalities, TC/WT/ET)."""
    out = []
    for seed in range(n):
        images, labels = tumour_case(seed=seed)
        label = torch.as_tensor(labels)
        regions = torch.stack(((label == 1) | (label == 4), label > 0, label == 4)).float()
        out.append({"image": torch.as_tensor(np.stack(images)) / 100.0, "label": regions, "case": f"Case_{seed}"})
    return out


class BadCases(Dataset):
    """Cases of which those named in ``bad`` cannot be read."""

    def __init__(self, data, bad=(), delay=0.0):
        super().__init__(data)
        self.bad, self.delay = set(bad), delay

    def __getitem__(self, index):
        item = super().__getitem__(index)
        time.sleep(self.delay)
        if item["case"] in self.bad:
            raise BratsDataError("cannot read the image", case=item["case"])
        return {k: v for k, v in item.items() if k != "case"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def join_group(rank, port, timeout, out):
    """What ``torch.distributed.run`` sets for each of its processes, then the product's start (once every process is
    ready, so that a short ``timeout`` is not spent waiting for the others to start)."""
    open(os.path.join(out, f"ready{rank}"), "w").close()
    while not all(os.path.exists(os.path.join(out, f"ready{r}")) for r in range(WORLD)):
        time.sleep(0.05)
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(WORLD),
        LOCAL_WORLD_SIZE=str(WORLD),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    return distributed.start("cpu", timeout)


def settings(batch=BATCH):
    return TrainSettings.from_dict({**TRAINING, "batch_size": batch})


def train(engine, data, rank=0, world=1, **kwargs):
    loader = make_loader(BadCases(rank_share(data, rank, world), **kwargs), engine.settings, train=True)
    return engine.train_steps(loader, STEPS)


def train_with(engine, data, rank, **kwargs):
    loader = make_loader(BadCases(rank_share(data, rank, WORLD)), engine.settings, train=True)
    return engine.train_steps(loader, STEPS, **kwargs)


def outcome(call):
    """``(result, None)`` or ``(None, (error type, message))``, and the seconds it took."""
    start = time.time()
    try:
        return call(), None, time.time() - start
    except Exception as e:
        return None, (type(e).__name__, str(e)), time.time() - start


def run_ranks(worker, tmp_path, *args):
    port = free_port()
    mp.spawn(worker, args=(port, str(tmp_path), *args), nprocs=WORLD, join=True)
    return [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


def _same_update_worker(rank, port, out):
    join_group(rank, port, 120, out)
    engine = SegmentationEngine(settings())
    result = train(engine, cases(), rank, WORLD)
    torch.save({"result": result, "weights": engine.get_weights()}, os.path.join(out, f"rank{rank}.pt"))
    distributed.stop()


def test_two_ranks_give_the_update_of_one_process_with_the_doubled_batch(tmp_path):
    ranks = run_ranks(_same_update_worker, tmp_path)
    alone = SegmentationEngine(settings(WORLD * BATCH))
    start = {k: v.clone() for k, v in alone.get_weights().items()}
    expected = train(alone, cases())
    reference = alone.get_weights()
    moved = max((reference[k] - start[k]).abs().max().item() for k in start)
    for r, got in enumerate(ranks):
        diffs = torch.cat([(got["weights"][k] - reference[k]).abs().flatten().double() for k in reference])
        print(
            f"rank {r}: max |w - w_alone| {diffs.max():.2e}, mean {diffs.mean():.2e}, 99.9% below "
            f"{diffs.quantile(0.999) if diffs.numel() < 2**24 else float('nan'):.2e}; the update moved weights by up "
            f"to {moved:.2e}; loss {got['result']['loss']:.6f} against {expected['loss']:.6f}"
        )
        assert moved > 1e-3 and diffs.max() < 1e-2 * moved, (r, diffs.max(), moved)
        assert got["result"]["steps"] == expected["steps"] == STEPS
        assert got["result"]["crops"] == expected["crops"] == STEPS * WORLD * BATCH
        assert got["result"]["loss"] == pytest.approx(expected["loss"], rel=1e-4)


def _failures_worker(rank, port, out):
    join_group(rank, port, 120, out)
    engine = SegmentationEngine(settings())
    data = cases()
    record = {}
    # a case only rank 1 reads cannot be read: every rank's task ends, with rank 1's message
    record["bad_case"] = outcome(lambda: train(engine, data, rank, WORLD, bad={"Case_1"}))
    # the group still works: the next round trains
    record["next_round"] = outcome(lambda: train(engine, data, rank, WORLD)["steps"])

    # rank 0 alone is asked to stop (the task's abort reaches the rank that talks to FLARE) after one step
    asked = iter([False, True, True])
    stop = (lambda: next(asked)) if rank == 0 else (lambda: False)
    record["stop"] = outcome(lambda: train_with(engine, data, rank, should_stop=stop))

    # rank 1 fails inside a step, while rank 0 waits for its gradients
    def broken(model):
        if rank == 1:
            raise RuntimeError("out of memory in rank 1")
        return torch.zeros(())

    record["step_failure"] = outcome(lambda: train_with(engine, data, rank, regulariser=broken))
    record["after_the_loss"] = outcome(lambda: train(engine, data, rank, WORLD))
    torch.save(record, os.path.join(out, f"rank{rank}.pt"))
    distributed.stop()


def test_a_failing_rank_ends_the_task_in_every_rank_with_its_message(tmp_path):
    rank0, rank1 = run_ranks(_failures_worker, tmp_path)
    _, error, seconds = rank0["bad_case"]
    assert error == ("RankError", "rank 1 of 2: BratsDataError: case Case_1: cannot read the image"), error
    assert seconds < 30
    assert rank1["bad_case"][1] == ("BratsDataError", "case Case_1: cannot read the image")
    assert rank0["next_round"][0] == rank1["next_round"][0] == STEPS

    for record in (rank0, rank1):  # rank 0's stop ends the steps of both, after the same step
        assert record["stop"][0]["stopped"] and record["stop"][0]["steps"] == 1, record["stop"]

    _, error, seconds = rank0["step_failure"]
    assert error == ("RankError", "rank 1 of 2: RuntimeError: out of memory in rank 1"), error
    assert seconds < 30
    assert rank1["step_failure"][1] == ("RuntimeError", "out of memory in rank 1")
    for record in (rank0, rank1):  # the group is gone: training refuses at once, saying why
        assert record["after_the_loss"][1][0] == "RankError"
        assert "the process group broke earlier" in record["after_the_loss"][1][1]


def _silent_rank_worker(rank, port, out):
    join_group(rank, port, 3, out)
    record = {}
    if rank == 1:
        time.sleep(8)  # a rank that hangs (e.g. on a stalled file system) longer than the group's timeout
    record["wait"] = outcome(lambda: distributed.agree(distributed.OK))
    torch.save(record, os.path.join(out, f"rank{rank}.pt"))
    distributed.stop()


def test_a_silent_rank_ends_the_wait_after_the_group_timeout(tmp_path):
    rank0, rank1 = run_ranks(_silent_rank_worker, tmp_path)
    _, error, seconds = rank0["wait"]
    assert error[0] == "RankError" and error[1].startswith("the site's 2 processes: lost the other ranks"), error
    assert 2 < seconds < 20
    assert rank1["wait"][1][0] == "RankError"


def test_every_rank_takes_as_many_cases_and_together_they_cover_all():
    entries = list(range(5))
    shares = [rank_share(entries, r, 2) for r in range(2)]
    assert shares == [[0, 2, 4], [1, 3, 0]]
    assert rank_share(entries, 0, 1) == entries
    assert [rank_share([7], r, 3) for r in range(3)] == [[7], [7], [7]]


def test_alone_the_engine_needs_no_group(tmp_path):
    assert distributed.current() is None and distributed.is_main() and distributed.world_size() == 1
    engine = SegmentationEngine(settings())
    assert engine.train_model is engine.model
    with pytest.raises(BratsDataError, match="Case_0"):
        train(engine, cases(2), bad={"Case_0"})


def test_alone_the_steps_run_across_passes_and_stop_on_request():
    engine = SegmentationEngine(settings())
    data = cases()
    batches = [{key: torch.stack([c[key] for c in data[k : k + 2]]) for key in ("image", "label")} for k in (0, 2)]
    assert engine.train_steps(batches, 3)["steps"] == 3  # a second pass over the 2 batches
    assert engine.train_steps(batches, 5, passes=1)["steps"] == 2
    stopped = engine.train_steps(batches, 3, should_stop=lambda: True)
    assert stopped["steps"] == 0 and stopped["stopped"]
    assert engine.train_steps([], 3)["steps"] == 0


def test_a_site_s_process_count_is_its_own_setting(tmp_path, monkeypatch):
    from fedbrats.runtime.fl.site_data import SITE_SETTINGS_FILE, SITES_ENV, site_processes

    monkeypatch.delenv(SITES_ENV, raising=False)
    local = tmp_path / "local"
    local.mkdir()
    assert site_processes("site-1", str(local), 1800)[:2] == (1, 1800.0)  # no setting: one process
    (local / SITE_SETTINGS_FILE).write_text('{"data_root": "/data", "processes": 4, "process_timeout": 600}')
    assert site_processes("site-1", str(local), 1800)[:2] == (4, 600.0)
    (local / SITE_SETTINGS_FILE).write_text('{"processes": 0}')
    with pytest.raises(ValueError, match="processes in .* must be a whole number of at least 1, got 0"):
        site_processes("site-1", str(local), 1800)


def test_a_rank_s_failure_is_rank_0_s_reply_with_the_failing_rank_s_message():
    from nvflare.apis.fl_constant import ReturnCode
    from nvflare.apis.fl_context import FLContext
    from nvflare.apis.shareable import Shareable
    from nvflare.apis.signal import Signal

    from fedbrats.runtime.fl.executor import BratsExecutor
    from fedbrats.runtime.fl.ranks import RANK_ERROR_HEADER, TASK_HEADER, pack, unpack

    executor = BratsExecutor(training=TRAINING)
    executor.is_rank = True

    def failing(shareable, fl_ctx, abort_signal):
        raise distributed.RankError(1, 2, "BratsDataError: case Case_1: cannot read the image")

    packed = executor._execute_in_rank("train", failing, pack(Shareable(), 7), FLContext(), Signal())
    reply = unpack(packed)
    assert packed.get_header(TASK_HEADER) == 7  # the task it answers
    assert reply.get_return_code() == ReturnCode.EXECUTION_EXCEPTION
    assert reply.get_header(RANK_ERROR_HEADER) == "rank 1 of 2: BratsDataError: case Case_1: cannot read the image"
