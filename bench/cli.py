"""Whole-CLI codec speed on the CPU: ``crdr compress`` then ``crdr decompress`` of kodim23 (768x512), each a
fresh process (imports, model loading and coding included), against the official ``scripts/compress.py``.

Variants: float32 from the official-format file, float32 from our ``.safetensors``, and the bfloat16
options (``--precision bfloat16`` on both commands) from the official-format file. Each round runs every
variant once (interleaved, so that a busy machine slows them alike); printed are the median wall time
of the whole pipeline and of each process, and each process's peak RSS (the largest over the rounds).

With ``--official PATH`` (a checkout of github.com/iwa-shi/CRDR whose dependencies ``--official-python``
can import), the official ``scripts/compress.py --decompress`` (one process: load, compress, decompress)
runs in the same rounds on the same file, and the ratio official/ours is of medians measured here.
Without it, the ratio is to the official figures of ../shared/reference/official/BASELINE.md on this
machine kind (AMD EPYC Zen 4, one thread: median 25.3 s, 1.76 GB peak), measured on another day.

Usage: python bench/cli.py [--checkpoint crdr.pth.tar] [--runs 3] [--threads 1] [--official PATH]
[--official-python PYTHON]. Without ``--checkpoint``, a randomly initialised full-width model is
written to a temporary folder in the official format (``{"comp_model": state_dict}``, torch.save) and
as our safetensors (the speed does not depend on the weights' values).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from crdr.package_data import DEMO_IMAGE_DIR

IMAGE = DEMO_IMAGE_DIR / "kodim23.png"
#: BASELINE.md, AMD EPYC (Zen 4) 2-core VM, one thread: official whole CLI on kodim23, one process.
BASELINE_SECONDS, BASELINE_PEAK_GB = 25.3, 1.76
QUALITY, BETA = "2", "2.56"


@dataclass
class Variant:
    """A pipeline of processes (each an argv, run in ``cwd`` with ``env``) and what they measured."""

    label: str
    commands: list[list[str]]
    env: dict[str, str]
    cwd: Path | None = None
    seconds: list[list[float]] = field(default_factory=list)  # per round, per process
    peak_kb: list[int] = field(default_factory=list)  # per process, the largest over rounds

    def run_once(self, log: Path) -> None:
        times = []
        for i, argv in enumerate(self.commands):
            seconds, peak = run_process(argv, self.env, self.cwd, log)
            times.append(seconds)
            if len(self.peak_kb) <= i:
                self.peak_kb.append(peak)
            self.peak_kb[i] = max(self.peak_kb[i], peak)
        self.seconds.append(times)

    def median_total(self) -> float:
        return statistics.median(sum(times) for times in self.seconds)

    def median_process(self, i: int) -> float:
        return statistics.median(times[i] for times in self.seconds)


def run_process(argv: list[str], env: dict[str, str], cwd: Path | None, log: Path) -> tuple[float, int]:
    """(wall seconds, peak RSS in KiB) of one process; its output goes to ``log`` (shown if it fails)."""
    with log.open("wb") as out:
        start = time.perf_counter()
        process = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        sys.exit(f"failed ({process.returncode}): {' '.join(argv)}\n{log.read_text(errors='replace')[-3000:]}")
    return seconds, usage.ru_maxrss  # KiB on Linux


def write_checkpoints(folder: Path) -> tuple[Path, Path]:
    """A random full-width model as an official-format file and as our safetensors."""
    import torch

    from crdr import load_model, save_generator

    torch.manual_seed(0)
    model = load_model(None, config="crdr")
    official = folder / "crdr.pth.tar"
    torch.save({"iter": 0, "comp_model": model.state_dict()}, official)
    return official, save_generator(model, folder / "crdr.safetensors")


def ours(label: str, checkpoint: Path, precision: str, out: Path, env: dict[str, str]) -> Variant:
    cli = [sys.executable, "-m", "crdr.cli.main"]
    common = ["--checkpoint", str(checkpoint), "--precision", precision, "-o", str(out)]
    compress = [*cli, "compress", str(IMAGE), "-q", QUALITY, *common]
    decompress = [*cli, "decompress", str(out / f"{IMAGE.stem}.crdr"), "--beta", BETA, *common]
    return Variant(label, [compress, decompress], env)


def official(checkout: Path, python: str, checkpoint: Path, tmp: Path, env: dict[str, str]) -> Variant:
    images = tmp / "official_in"
    images.mkdir()
    (images / IMAGE.name).symlink_to(IMAGE)
    argv = [python, "scripts/compress.py", "--config_path", "config/crdr.yaml", "--model_path", str(checkpoint)]
    argv += ["--img_dir", str(images), "--save_dir", str(tmp / "official_out"), "-q", QUALITY, "-b", BETA]
    argv += ["--decompress", "-d", "cpu"]
    return Variant("official scripts/compress.py --decompress", [argv], {**env, "PYTHONPATH": str(checkout)}, checkout)


def report(variants: list[Variant], reference: Variant | None) -> None:
    if reference is not None:
        base_seconds, base_peak = reference.median_total(), max(reference.peak_kb) / 2**20
        source = "measured in these rounds"
    else:
        base_seconds, base_peak = BASELINE_SECONDS, BASELINE_PEAK_GB / 1.073741824
        source = f"BASELINE.md: {BASELINE_SECONDS} s, {BASELINE_PEAK_GB} GB, not measured now"
    print(f"\nofficial/ours: official {base_seconds:.2f} s, peak {base_peak:.2f} GiB ({source})")
    for v in variants:
        rounds = ", ".join(f"{sum(t):.2f}" for t in v.seconds)
        parts = "  ".join(f"[{v.median_process(i):.2f} s, {kb / 2**20:.2f} GiB]" for i, kb in enumerate(v.peak_kb))
        line = f"{v.label:44s} {v.median_total():6.2f} s ({rounds})  per process {parts}"
        if v is not reference:
            line += f"  official/ours {base_seconds / v.median_total():.2f}x"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, help="official-format file (default: a random full-width model)")
    parser.add_argument("--safetensors", type=Path, help="the same weights as our .safetensors (default: written)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--official", type=Path, help="a checkout of the official code (github.com/iwa-shi/CRDR)")
    parser.add_argument("--official-python", default=sys.executable, help="a Python with the official deps")
    args = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        checkpoint, safetensors = args.checkpoint, args.safetensors
        if checkpoint is None:
            checkpoint, written = write_checkpoints(tmp)
            safetensors = safetensors or written
        variants = [ours("ours float32, official-format file", checkpoint, "float32", tmp / "f32", env)]
        if safetensors is not None:
            variants.append(ours("ours float32, our .safetensors", safetensors, "float32", tmp / "st", env))
        variants.append(ours("ours --precision bfloat16, official file", checkpoint, "bfloat16", tmp / "bf16", env))
        reference = None
        if args.official is not None:
            reference = official(args.official.resolve(), args.official_python, checkpoint, tmp, env)
            variants.insert(0, reference)
            print(f"official code: {args.official} with {versions(args.official_python)}")
        print(f"{IMAGE.name} 768x512, {args.threads} thread(s), {args.runs} rounds; CPU: {cpu_name()}")
        for r in range(args.runs):
            for v in variants:
                v.run_once(tmp / "process.log")
            print(f"round {r + 1}: " + " / ".join(f"{sum(v.seconds[-1]):.2f}" for v in variants) + " s")
        report(variants, reference)


def versions(python: str) -> str:
    """torch and compressai versions that ``python`` imports."""
    script = "import compressai, torch; print(f'torch {torch.__version__}, compressai {compressai.__version__}')"
    result = subprocess.run([python, "-W", "ignore", "-c", script], capture_output=True, text=True, check=False)
    return result.stdout.strip() or f"({python} cannot import torch and compressai)"


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


if __name__ == "__main__":
    main()
