"""Exact resume: a run stopped by SIGKILL, SIGTERM, SIGUSR2 or SIGINT (to its main process or to all of its
processes, DataLoader workers included) continues with the losses of an uninterrupted run."""

from __future__ import annotations

import contextlib
import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException

from conftest import ROOT, tiny_train_overrides, train_config
from crdr.cli.train import INTERRUPTED_EXIT_CODE, STOPPED_EXIT_CODE, build_datamodule, build_module, build_trainer
from crdr.lit.callbacks import RngStateCheckpoint
from crdr.lit.checkpoint_io import AtomicCheckpointIO
from crdr.lit.csv_logger import ContinuingExperimentWriter

MAX_STEPS = 6
#: Checkpoints every 2 iterations (stepN.ckpt and last.ckpt); no validation; losses logged every step.
RUN = [
    f"trainer.max_steps={MAX_STEPS}",
    "trainer.val_check_interval=1000",
    "callbacks.checkpoint.every_n_train_steps=2",
]


def _command(run_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "crdr.cli.train", *tiny_train_overrides(), *RUN, f"hydra.run.dir={run_dir}", *extra]


def _losses(run_dir: Path) -> dict[int, float]:
    with open(run_dir / "csv" / "metrics.csv", newline="") as f:
        return {int(r["step"]): float(r["train/loss"]) for r in csv.DictReader(f) if r.get("train/loss")}


def _live_group(pgid: int) -> list[int]:
    """The processes of process group ``pgid`` that have not exited (zombies left out; Linux /proc)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _ppid, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except OSError:  # exited meanwhile
            continue
        if state != "Z" and int(group) == pgid:
            members.append(int(stat.parent.name))
    return members


def _wait(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _start_and_stop_after_first_checkpoint(
    run_dir: Path, sig: signal.Signals, *extra: str, group: bool = False
) -> tuple[int, int]:
    """Starts a run in a process group of its own and, once last.ckpt exists, sends ``sig`` to its main
    process (to every process of the group with ``group``, as SLURM and terminals do). Returns the exit
    status and how many other processes (DataLoader workers) the group held then; all of them must
    be gone soon after the main process."""
    process = subprocess.Popen(
        _command(run_dir, *extra), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    last = run_dir / "checkpoints" / "last.ckpt"
    try:
        assert _wait(lambda: last.exists() or process.poll() is not None, 300)
        others = len(_live_group(process.pid)) - 1
        if group:
            os.killpg(process.pid, sig)
        else:
            process.send_signal(sig)
        _, stderr = process.communicate(timeout=300)
        # PyTorch's workers watch their parent: they exit within seconds of a SIGKILLed main process
        assert _wait(lambda: not _live_group(process.pid), 60), "processes of the run outlived it"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
    assert last.exists(), stderr[-3000:]
    return process.returncode, others


def _assert_resumes_exactly(run_dir: Path, uninterrupted: dict[int, float], graceful: bool, *extra: str) -> None:
    """The run stopped in ``run_dir``, resumed from its last.ckpt, logs the uninterrupted run's losses."""
    stopped_at = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert 2 <= stopped_at < MAX_STEPS
    if graceful:  # the iteration in flight finished, was logged and is in the checkpoint
        assert max(_losses(run_dir)) == stopped_at - 1

    env = {**os.environ, "PYTHONHASHSEED": "1"}  # another process in every respect
    result = subprocess.run(
        _command(run_dir, "ckpt_path=last", *extra), cwd=ROOT, capture_output=True, text=True, timeout=600, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resuming from" in result.stdout
    losses = _losses(run_dir)  # the CSV log continues the stopped run's (SIGKILL loses unflushed rows)
    assert set(range(stopped_at, MAX_STEPS)) <= set(losses)
    assert losses == {step: uninterrupted[step] for step in losses}  # bit for bit
    if graceful:
        assert sorted(losses) == list(range(MAX_STEPS))
    assert (run_dir / "generator.safetensors").exists()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict[int, float]:
    """The losses of a run without DataLoader workers (the training stream does not depend on them)."""
    run_dir = tmp_path_factory.mktemp("uninterrupted")
    result = subprocess.run(_command(run_dir), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    losses = _losses(run_dir)
    assert sorted(losses) == list(range(MAX_STEPS))
    return losses


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGUSR2], ids=["kill", "term", "usr2"])
def test_a_stopped_run_resumes_with_the_uninterrupted_losses(tmp_path, uninterrupted, sig):
    status, _ = _start_and_stop_after_first_checkpoint(tmp_path, sig)
    assert status == (-signal.SIGKILL if sig == signal.SIGKILL else STOPPED_EXIT_CODE)
    _assert_resumes_exactly(tmp_path, uninterrupted, sig != signal.SIGKILL)


@pytest.mark.parametrize(
    ("sig", "persistent"),
    [(signal.SIGTERM, False), (signal.SIGUSR2, True), (signal.SIGINT, False)],
    ids=["term", "usr2-persistent-workers", "int"],
)
def test_a_signal_to_every_process_of_a_run_with_loader_workers_saves_and_stops(
    tmp_path, uninterrupted, sig, persistent
):
    """SLURM (scancel, submitit's SIGUSR2), ``timeout`` and Ctrl-C signal the workers too: they ignore it."""
    workers = ["data.num_workers=2", f"data.persistent_workers={str(persistent).lower()}"]
    status, others = _start_and_stop_after_first_checkpoint(tmp_path, sig, *workers, group=True)
    assert others >= 2  # the workers were there to receive it
    assert status == (INTERRUPTED_EXIT_CODE if sig == signal.SIGINT else STOPPED_EXIT_CODE)
    _assert_resumes_exactly(tmp_path, uninterrupted, True, *workers)


def test_the_loader_workers_of_a_killed_run_exit_with_it(tmp_path):
    status, others = _start_and_stop_after_first_checkpoint(tmp_path, signal.SIGKILL, "data.num_workers=2")
    assert status == -signal.SIGKILL and others >= 2  # and every worker exited after it


def test_resuming_from_a_missing_checkpoint_is_a_clear_error(tmp_path):
    result = subprocess.run(_command(tmp_path, "ckpt_path=last"), cwd=ROOT, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 2 and "Traceback" not in output
    assert "ckpt_path=last" in output and "does not exist" in output


def test_a_stop_signal_saves_then_hands_over_to_the_handler_installed_before(tmp_path, monkeypatch):
    """submitit installs a SIGUSR2 handler that requeues the job; it must run after last.ckpt is saved,
    once, even when the signals come again while the checkpoint is written."""
    calls = []
    write = torch.save

    def signalled_again_while_written(obj, f, *args, **kwargs):
        write(obj, f, *args, **kwargs)  # the temporary file is complete, not yet renamed to last.ckpt
        for sig in (signal.SIGUSR2, signal.SIGTERM):
            os.kill(os.getpid(), sig)

    monkeypatch.setattr(torch, "save", signalled_again_while_written)

    def requeue(signum, frame):
        calls.append((signum, last.exists()))

    previous = signal.signal(signal.SIGUSR2, requeue)
    last = tmp_path / "checkpoints" / "last.ckpt"
    try:
        cfg = train_config(tmp_path, ["trainer.max_steps=4", "trainer.val_check_interval=1000"])
        module, trainer = build_module(cfg), build_trainer(cfg)
        step = module.training_step

        def training_step(batch, batch_idx):
            if batch_idx == 1:
                os.kill(os.getpid(), signal.SIGUSR2)  # arrives in the middle of the iteration
            return step(batch, batch_idx)

        module.training_step = training_step
        with pytest.raises(SIGTERMException):
            trainer.fit(module, datamodule=build_datamodule(cfg))
        assert calls == [(signal.SIGUSR2, True)]
        assert torch.load(last, weights_only=True)["global_step"] == 2  # the interrupted iteration finished
        assert signal.getsignal(signal.SIGUSR2) is requeue  # the handler from before is back
    finally:
        signal.signal(signal.SIGUSR2, previous)


def test_a_failed_checkpoint_write_leaves_the_previous_one_intact(tmp_path, monkeypatch):
    cfg = train_config(tmp_path, ["trainer.max_steps=2", "trainer.val_check_interval=1000"])
    trainer = build_trainer(cfg)
    assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)
    trainer.fit(build_module(cfg), datamodule=build_datamodule(cfg))
    last = tmp_path / "checkpoints" / "last.ckpt"
    before = last.read_bytes()

    def disk_full(obj, f, *args, **kwargs):
        Path(f).write_bytes(before[: len(before) // 3])  # a partial write, then the error
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        trainer.save_checkpoint(last)
    assert last.read_bytes() == before  # the previous checkpoint is untouched
    assert [p.name for p in last.parent.iterdir()] == ["last.ckpt"]  # no temporary file left behind


def test_the_csv_log_continues_the_stopped_runs_rows_up_to_the_resumed_step(tmp_path):
    log = tmp_path / "metrics.csv"
    log.write_text("epoch,step,train/loss\n0,0,5.0\n0,1,4.0\n0,2,3.0\n0,3,2.")  # killed in the middle of a line
    writer = ContinuingExperimentWriter(str(tmp_path))
    writer.log_metrics({"train/loss": 3.5, "train/bpp": 0.25}, step=2)  # resumed from the step-2 checkpoint
    writer.save()
    with open(log, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["step"], r["train/loss"], r["train/bpp"]) for r in rows] == [
        ("0", "5.0", ""),
        ("1", "4.0", ""),
        ("2", "3.5", "0.25"),
    ]


@pytest.mark.parametrize("rewrite", ["resumed", "new_column"])
def test_a_kill_while_the_csv_log_is_rewritten_leaves_the_old_log_whole(tmp_path, monkeypatch, rewrite):
    log = tmp_path / "metrics.csv"
    if rewrite == "new_column":  # this process wrote the log; a new metric makes Lightning rewrite its header
        writer = ContinuingExperimentWriter(str(tmp_path))
        writer.log_metrics({"train/loss": 5.0}, step=0)
        writer.save()
    else:  # a resumed process drops the stopped run's rows after its checkpoint
        log.write_text("step,train/loss\n0,5.0\n1,4.0\n")
        writer = ContinuingExperimentWriter(str(tmp_path))
    before = log.read_bytes()

    def killed(self, rows):
        raise KeyboardInterrupt  # the process dies after the header of the rewritten file

    monkeypatch.setattr(csv.DictWriter, "writerows", killed)
    writer.log_metrics({"train/loss": 3.5, "train/bpp": 0.25}, step=1)
    with pytest.raises(KeyboardInterrupt):
        writer.save()
    assert log.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.csv"]  # no temporary file left behind
    monkeypatch.undo()
    resumed = ContinuingExperimentWriter(str(tmp_path))  # the run resumed from its step-1 checkpoint
    resumed.log_metrics({"train/loss": 3.5, "train/bpp": 0.25}, step=1)
    resumed.save()
    with open(log, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["step"], r["train/loss"], r["train/bpp"]) for r in rows] == [("0", "5.0", ""), ("1", "3.5", "0.25")]


def test_a_checkpoint_taken_before_the_resumed_rng_states_are_restored_carries_them():
    callback = RngStateCheckpoint()
    torch.manual_seed(1)
    saved = callback.state_dict()
    callback.load_state_dict(saved)
    torch.manual_seed(2)  # start-up draws of the resumed process
    assert torch.equal(callback.state_dict()["torch"], saved["torch"])  # e.g. a stop during sanity validation
    callback.on_train_start(None, None)
    assert torch.equal(torch.get_rng_state(), saved["torch"])
    torch.rand(3)
    assert not torch.equal(callback.state_dict()["torch"], saved["torch"])


def test_a_run_folder_moved_elsewhere_resumes_and_keeps_last_ckpt_current(tmp_path):
    """Lightning keeps the checkpoint folder of the run it restores; in a new place, by default it would
    write last-v1.ckpt beside the restored last.ckpt, which the next ``ckpt_path=last`` would take."""
    first, moved = tmp_path / "first", tmp_path / "moved"
    done = subprocess.run(_command(first, "trainer.max_steps=2"), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    shutil.move(first, moved)
    resumed = subprocess.run(_command(moved, "ckpt_path=last"), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    checkpoints = moved / "checkpoints"
    assert torch.load(checkpoints / "last.ckpt", weights_only=True)["global_step"] == MAX_STEPS
    assert not list(checkpoints.glob("*-v*.ckpt"))
