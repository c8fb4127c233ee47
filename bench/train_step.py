"""Training-step throughput and peak memory at full width (the real module and Trainer).

Composes ``--experiment`` (default ``crdr_stage3``: full-width CRDR, one GVAE discriminator per
rate level, HRRGAN, LPIPS; ``crdr_stage1``: rate + distortion + LPIPS, no ICA) and times
``--steps`` generator iterations of ``Trainer.fit`` on random 256x256 crops of the bundled Kodak
images after ``--warmup`` iterations. LPIPS runs on a random AlexNet backbone (same cost as the
real one). Prints seconds per step, images per second, peak memory (CPU: process max RSS; CUDA:
max allocated) and the ratio to the official code's figures (../shared/reference/official/
BASELINE.md; 2-core CPU, stage 3, batch 8: ~32 s per step, 8.2 GB peak). Each ``--variants``
entry (fp32, bf16, channels_last, fused, compile, joined with +) runs in this process after the
first, and its speed is printed as a ratio to the first (the fp32 eager baseline). ``--tiny``
shrinks the networks to the golden_tiny widths (``widths=tiny``) and the crops to 64x64: what is left of the step is
its host overhead (operator dispatch, Python, Lightning), which bounds the step on a GPU.
Usage: python bench/train_step.py [--experiment crdr_stage3] [--batch 8] [--steps 3] [--tiny]
       [--device cpu|cuda] [--threads N] [--variants fp32,bf16,channels_last,bf16+channels_last]
       [--count-ops] [--profile] [--workers N]
"""

from __future__ import annotations

import argparse
import gc
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from lightning import Callback
from omegaconf import open_dict
from torch.utils._python_dispatch import TorchDispatchMode

from crdr.cli.train import build_datamodule, build_module, build_trainer
from crdr.config import config_dir
from crdr.package_data import demo_images

ROOT = Path(__file__).resolve().parents[1]

VARIANTS = {
    "fp32": [],
    "bf16": ["trainer.precision=bf16-mixed"],
    "channels_last": ["module.channels_last=true"],
    "fused": ["optimizer.generator.fused=true", "optimizer.discriminator.fused=true"],
    "cudnn_benchmark": ["trainer.benchmark=true"],  # cuDNN picks the fastest kernels for the fixed crop
    "compile": ["module.compile.enabled=true"],  # torch.compile (inductor); compiled during the warm-up
    "cudagraphs": ["module.compile.mode=reduce-overhead"],  # with compile: CUDA graphs of the compiled networks
}
OFFICIAL_CPU_BATCH8_SECONDS = 32.0
OFFICIAL_CPU_BATCH8_PEAK_GB = 8.2
OFFICIAL_H100_BATCH8_SECONDS = (0.24, 0.27)
OFFICIAL_H100_BATCH8_PEAK_GIB = 6.5


class OperatorCounter(TorchDispatchMode):
    """Counts the ATen operators dispatched while active: a device-independent measure of a step's
    host work (on a GPU, most of them launch a kernel)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


class StepTimer(Callback):
    """Wall time of every training batch (forward, reference pass, D and G updates); with
    ``profile_batch``, that batch runs under ``torch.profiler``, with ``count_batch`` under an
    :class:`OperatorCounter` (neither is timed)."""

    def __init__(self, profile_batch: int | None = None, count_batch: int | None = None) -> None:
        self.seconds: list[float] = []
        self.profile_batch = profile_batch
        self.profile: torch.profiler.profile | None = None
        self.profiled_seconds = 0.0
        self.count_batch = count_batch
        self.counter = OperatorCounter()

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if batch_idx == self.count_batch:
            self.counter.__enter__()
        if batch_idx == self.profile_batch:
            activities = [torch.profiler.ProfilerActivity.CPU]
            if torch.cuda.is_available():
                activities.append(torch.profiler.ProfilerActivity.CUDA)
            self.profile = torch.profiler.profile(activities=activities)
            self.profile.start()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        seconds = time.perf_counter() - self._start
        if batch_idx == self.count_batch:
            self.counter.__exit__(None, None, None)
        elif batch_idx == self.profile_batch:
            self.profile.stop()
            self.profiled_seconds = seconds
        else:
            self.seconds.append(seconds)


def print_profile(timer: StepTimer, device: str) -> None:
    """Device-busy share of the profiled step and its ten most expensive operators."""
    events = timer.profile.key_averages()
    if device == "cuda":
        kernels = (
            sum(  # device-side events (kernels, copies); annotations would count their ranges again
                e.self_device_time_total
                for e in events
                if e.device_type == torch.autograd.DeviceType.CUDA and not e.is_user_annotation
            )
            / 1e6
        )
        print(
            f"  profiled step: {timer.profiled_seconds:.3f} s wall, {kernels:.3f} s of GPU kernels "
            f"({kernels / timer.profiled_seconds:.0%} busy; the rest is launch and host overhead)"
        )
        print(events.table(sort_by="self_device_time_total", row_limit=10, max_name_column_width=60))
    print(events.table(sort_by="self_cpu_time_total", row_limit=10, max_name_column_width=60))


def run_variant(
    args: argparse.Namespace, extra: list[str], count_ops: bool
) -> tuple[float, list[float], float, StepTimer]:
    """(mean seconds per timed step, all timed steps, peak GiB, the timer) of one configuration;
    ``count_ops``: one more step under an :class:`OperatorCounter`."""
    if args.device == "cuda":
        gc.collect()  # the previous variant's module and optimizer states must not count in this peak
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory() as tmp:
        images = Path(tmp) / "images"
        images.mkdir()
        kodak = demo_images()
        for i in range(args.batch):  # enough files for one batch; crops are random each step
            (images / f"kodim{i}.png").symlink_to(kodak[i % len(kodak)])
        overrides = [
            f"experiment={args.experiment}",
            "data=image_folder",
            f"data.train_dirs=[{images}]",
            f"data.batch_size={args.batch}",
            f"data.crop_size={args.crop}",
            f"data.num_workers={args.workers}",
            f"data.pin_memory={args.device == 'cuda'}",
            f"data.persistent_workers={args.workers > 0}",
            "init_from=null",
            "perceptual_loss.random_backbone=true",
            f"trainer.accelerator={args.device}",
            f"trainer.max_steps={args.warmup + args.steps + count_ops + args.profile}",
            "trainer.enable_progress_bar=false",
            "callbacks={}",
            *extra,
        ]
        if args.tiny:
            overrides.append("widths=tiny")  # conf/widths/tiny.yaml: golden_tiny widths of model and discriminator
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            cfg = compose("train", overrides=overrides, return_hydra_config=True)
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = tmp
            cfg.hydra.runtime.cwd = str(ROOT)
        HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):
            del cfg["hydra"]
        module = build_module(cfg)
        after_timed = args.warmup + args.steps
        timer = StepTimer(
            profile_batch=after_timed + count_ops if args.profile else None,
            count_batch=after_timed if count_ops else None,
        )
        trainer = build_trainer(cfg)
        trainer.callbacks.append(timer)
        trainer.fit(module, datamodule=build_datamodule(cfg))
    steps = timer.seconds[args.warmup :]
    if args.device == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**30
    else:  # the process's peak so far (a variant run after a larger one reports the larger peak)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return sum(steps) / len(steps), steps, peak, timer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="crdr_stage3", choices=["crdr_stage1", "crdr_stage2", "crdr_stage3"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--workers", type=int, default=0, help="data-loader processes (0: in the training process)")
    parser.add_argument("--profile", action="store_true", help="profile one extra step per variant")
    parser.add_argument("--count-ops", action="store_true", help="count the ATen operators of one extra eager step")
    parser.add_argument("--variants", default="fp32")
    parser.add_argument("--tiny", action="store_true", help="golden_tiny widths and 64x64 crops: the host overhead")
    args = parser.parse_args()
    args.crop = 64 if args.tiny else 256
    width = "tiny width" if args.tiny else "full width"
    if args.threads:
        torch.set_num_threads(args.threads)
    memory = "peak CUDA memory" if args.device == "cuda" else "peak RSS"
    baseline = None
    for name in args.variants.split(","):
        extra = [override for part in name.split("+") for override in VARIANTS[part]]
        # under a dispatch mode compiled code runs eagerly: a compiled variant cannot be counted
        count_ops = args.count_ops and "compile" not in name
        seconds, steps, peak, timer = run_variant(args, extra, count_ops)
        baseline = baseline or seconds
        print(
            f"{name}: {args.experiment} step, {width}, batch {args.batch}, {args.crop}x{args.crop}, {args.device}, "
            f"{torch.get_num_threads()} thread(s): {seconds:.2f} s/step ({', '.join(f'{s:.2f}' for s in steps)}), "
            f"{args.batch / seconds:.2f} img/s, {memory} {peak:.2f} GiB; "
            f"speed vs first variant {baseline / seconds:.2f}x"
        )
        official = args.batch == 8 and args.experiment == "crdr_stage3" and not args.tiny
        if args.device == "cpu" and official:
            print(
                f"  official (2-core CPU, batch 8): {OFFICIAL_CPU_BATCH8_SECONDS} s/step, "
                f"{OFFICIAL_CPU_BATCH8_PEAK_GB} GB peak; official/ours {OFFICIAL_CPU_BATCH8_SECONDS / seconds:.2f}x"
            )
        if args.device == "cuda" and official:
            low, high = OFFICIAL_H100_BATCH8_SECONDS
            print(
                f"  official (one H100, batch 8): {low}-{high} s/step, {OFFICIAL_H100_BATCH8_PEAK_GIB} GiB peak; "
                f"official/ours {low / seconds:.2f}-{high / seconds:.2f}x on {torch.cuda.get_device_name()}"
            )
        if count_ops:
            print(f"  ATen operators dispatched in one step: {timer.counter.count}")
        if args.profile:
            print_profile(timer, args.device)


if __name__ == "__main__":
    sys.exit(main())
