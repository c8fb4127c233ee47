"""Weights & Biases for evaluation: the grid as tables and line plots (mode chosen by crdr.io.wandb_mode)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from crdr.io.wandb_mode import wandb_mode

#: Summary columns plotted against bpp in W&B (lower is better for all but PSNR and MS-SSIM).
PLOTTED = ("PSNR", "MS-SSIM", "FID", "KID", "LPIPS", "DISTS")


class WandbGrid:
    """One W&B run per evaluation: a row per grid point as it finishes, then a table and RD line plots."""

    def __init__(self, cfg: DictConfig, config: dict[str, Any]) -> None:
        import wandb

        mode = wandb_mode(cfg.wandb.offline, Path(cfg.output_dir), cfg.wandb.probe_timeout, "wandb")
        self._wandb = wandb
        self.run = wandb.init(
            project=cfg.wandb.project,
            entity=cfg.wandb.entity,
            tags=list(cfg.wandb.tags),
            dir=str(cfg.output_dir),
            config=config,
            job_type="evaluate",
            mode=mode,
        )

    def log_point(self, row: dict[str, Any]) -> None:
        self.run.log({f"grid/{k}": v for k, v in row.items() if isinstance(v, (int, float)) and v is not None})

    def finish(self, summary: list[dict[str, str]], plots: list[Path]) -> None:
        wandb = self._wandb
        columns = list(summary[0]) if summary else []
        table = wandb.Table(columns=columns, data=[[row[c] for c in columns] for row in summary])
        logs: dict[str, Any] = {"results": table}
        betas = sorted({row["beta"] for row in summary})
        for metric in PLOTTED:
            series = [
                [(float(r["bpp"]), float(r[metric])) for r in summary if r["beta"] == beta and r.get(metric)]
                for beta in betas
            ]
            if not any(series):
                continue
            logs[f"rd/{metric}"] = wandb.plot.line_series(
                xs=[[p[0] for p in s] for s in series],
                ys=[[p[1] for p in s] for s in series],
                keys=[f"beta={beta}" for beta in betas],
                title=f"{metric} vs bpp",
                xname="bpp",
            )
        for path in plots:
            if path.suffix == ".png":
                logs[f"figures/{path.stem}"] = wandb.Image(str(path))
        self.run.log(logs)
        self.run.finish()
