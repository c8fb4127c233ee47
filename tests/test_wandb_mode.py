"""W&B with an API key but no answering service: offline within seconds (one line saying so), or a
one-line error when online was demanded. Every server here is on 127.0.0.1 and stops with its test."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_only

from conftest import GOLDEN_TINY, ROOT, tiny_train_overrides, train_config
from crdr.cli.main import main
from crdr.cli.train import build_loggers, run
from crdr.io.errors import ConfigError
from crdr.io.images import write_image
from crdr.io.wandb_mode import WandbUnreachableError, probe, wandb_mode

FAKE_KEY = "0123456789abcdef0123456789abcdef01234567"  # the 40 characters of a W&B API key


@pytest.fixture
def wandb_env(tmp_path, monkeypatch):
    """A fresh wandb session (settings are read once per session) with a fake key, no proxy, no user
    settings files; ``set_env(name=value, ...)`` changes the environment and starts another session."""
    import wandb

    for name in list(os.environ):
        if name.startswith("WANDB_") or name.lower().endswith("_proxy") or name == "NETRC":
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)  # no ./wandb/settings of the checkout
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB__SERVICE_WAIT", "300")  # a loaded CI machine starts wandb-core slowly

    def set_env(**env: str | None) -> None:
        for name, value in env.items():
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        wandb.teardown()

    set_env()
    yield set_env
    wandb.teardown()


@pytest.fixture
def refused_url():
    """A port on 127.0.0.1 where nothing listens (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def black_hole_url():
    """A port on 127.0.0.1 that takes connections (the kernel completes them) and never answers."""
    with socket.create_server(("127.0.0.1", 0), backlog=16) as server:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


class _Answering(BaseHTTPRequestHandler):
    def do_HEAD(self) -> None:
        self.server.request_targets.append(self.path)
        self.send_response(self.server.status)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def answering():
    """An HTTP server on 127.0.0.1 answering ``status`` (401, as W&B without a key) to everything, recording
    each request target (an absolute URL when it serves as a proxy)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answering)
    server.request_targets = []
    server.status = 401
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield server
    server.shutdown()
    server.server_close()


def _lines(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "crdr.wandb_mode"]


@pytest.mark.timeout(60)
def test_the_probe_tells_an_answer_from_a_refusal_and_from_silence(answering, refused_url, black_hole_url):
    assert probe(answering.url, 5) is None  # 401 is an answer
    assert answering.request_targets == ["/"]
    assert probe(refused_url, 5) == "connection refused"
    assert probe(black_hole_url, 0.5) == "no answer within 0.5 s"


@pytest.mark.timeout(60)
def test_a_key_and_an_answering_host_log_online_and_no_key_logs_offline_without_probing(wandb_env, answering, tmp_path):
    wandb_env(WANDB_BASE_URL=answering.url)
    assert wandb_mode(None, tmp_path, 5, "logger.wandb") == "online"
    assert wandb_mode(True, tmp_path, 5, "logger.wandb") == "offline"
    wandb_env(WANDB_API_KEY=None)
    assert wandb_mode(None, tmp_path, 5, "logger.wandb") == "offline"
    wandb_env(WANDB_API_KEY=FAKE_KEY, WANDB_MODE="disabled")
    assert wandb_mode(None, tmp_path, 5, "logger.wandb") == "disabled"
    assert answering.request_targets == ["/"]  # only the first call probed
    with pytest.raises(ConfigError, match=r"logger\.wandb\.probe_timeout must be a positive number"):
        wandb_mode(None, tmp_path, 0, "logger.wandb")


@pytest.mark.timeout(60)
def test_an_unreachable_host_means_offline_or_an_error_when_online_was_demanded(
    wandb_env, refused_url, tmp_path, caplog
):
    host = refused_url.removeprefix("http://")
    wandb_env(WANDB_BASE_URL=refused_url)
    with caplog.at_level("INFO", logger="crdr.wandb_mode"):
        assert wandb_mode(None, tmp_path, 5, "wandb") == "offline"
    (line,) = _lines(caplog)
    assert line == (
        f"W&B: logging offline because {host} is unreachable (connection refused); "
        f"upload later with `wandb sync {tmp_path / 'wandb'}`"
    )
    with pytest.raises(WandbUnreachableError, match=r"demanded \(wandb.offline=false\) but .* \(connection refused\)"):
        wandb_mode(False, tmp_path, 5, "wandb")
    wandb_env(WANDB_MODE="online")
    with pytest.raises(WandbUnreachableError, match=r"demanded \(WANDB_MODE=online\)"):
        wandb_mode(None, tmp_path, 5, "wandb")


@pytest.mark.timeout(60)
def test_the_probe_goes_through_the_proxy_wandb_would_use(wandb_env, answering, refused_url, tmp_path, caplog):
    # wandb.invalid never resolves: only a request through the proxy can be answered (and no lookup is made).
    wandb_env(WANDB_BASE_URL="http://wandb.invalid", HTTP_PROXY=answering.url)
    assert wandb_mode(None, tmp_path, 5, "wandb") == "online"
    assert answering.request_targets == ["http://wandb.invalid"]
    answering.status = 502  # the proxy answers for W&B, which it cannot reach
    with caplog.at_level("INFO", logger="crdr.wandb_mode"):
        assert wandb_mode(None, tmp_path, 5, "wandb") == "offline"
    assert f"(through proxy {answering.url}) is unreachable (HTTP 502 Bad Gateway)" in _lines(caplog)[0]
    wandb_env(HTTP_PROXY=refused_url)
    proxy = refused_url.removeprefix("http://")
    with pytest.raises(WandbUnreachableError, match=f"wandb.invalid \\(through proxy http://{proxy}\\) is unreachable"):
        wandb_mode(False, tmp_path, 5, "wandb")
    answering.status = 401
    wandb_env(WANDB_BASE_URL=answering.url)  # loopback is never proxied (as in Go's ProxyFromEnvironment)
    assert wandb_mode(False, tmp_path, 5, "wandb") == "online"


@pytest.mark.timeout(120)
def test_training_with_a_key_and_a_silent_host_trains_and_logs_offline(wandb_env, black_hole_url, tmp_path, caplog):
    wandb_env(WANDB_BASE_URL=black_hole_url)
    out = tmp_path / "run"
    cfg = train_config(out, ["logger=wandb", "logger.wandb.probe_timeout=1"])
    with caplog.at_level("INFO", logger="crdr.wandb_mode"):
        run(cfg)
    (line,) = _lines(caplog)
    assert "unreachable (no answer within 1 s)" in line and f"wandb sync {out / 'wandb'}" in line
    (offline_run,) = (out / "wandb").glob("offline-run-*")
    assert b"train/loss" in b"".join(p.read_bytes() for p in offline_run.rglob("*.wandb"))
    assert (out / "generator.safetensors").is_file()


def test_only_rank_zero_probes_the_host(wandb_env, black_hole_url, tmp_path, caplog, monkeypatch):
    """Other DDP ranks never log to W&B (WandbLogger): they neither wait for the host nor print the line."""
    wandb_env(WANDB_BASE_URL=black_hole_url)
    cfg = train_config(tmp_path / "run", ["logger=wandb", "logger.wandb.probe_timeout=30"])
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    with caplog.at_level("INFO", logger="crdr.wandb_mode"):
        (logger,) = [logger for logger in build_loggers(cfg) if isinstance(logger, WandbLogger)]
    assert not _lines(caplog) and logger._wandb_init["mode"] == "offline"


@pytest.mark.timeout(120)
def test_crdr_train_demanding_online_stops_with_one_line_and_exit_2(wandb_env, refused_url, tmp_path):
    wandb_env(WANDB_BASE_URL=refused_url)
    out = tmp_path / "run"
    args = [*tiny_train_overrides(), "logger=wandb", "logger.wandb.offline=false", f"hydra.run.dir={out}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    command = [str(Path(sys.executable).parent / "crdr-train"), *args]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=100)
    assert done.returncode == 2, done.stderr
    output = done.stdout + done.stderr
    (line,) = [line for line in output.splitlines() if "WandbUnreachableError" in line]
    assert "demanded (logger.wandb.offline=false)" in line and "connection refused" in line
    assert "Traceback" not in output
    assert not list(out.rglob("*.ckpt")) and not (out / "generator.safetensors").exists()  # nothing trained


@pytest.mark.timeout(120)
def test_crdr_evaluate_with_a_key_and_a_silent_host_logs_offline(wandb_env, black_hole_url, kodak, tmp_path, capsys):
    wandb_env(WANDB_BASE_URL=black_hole_url)
    write_image(kodak[0][:, :, :64, :64], tmp_path / "images" / "a.png")
    out = tmp_path / "eval"
    argv = [
        "evaluate",
        f"checkpoint={GOLDEN_TINY / 'official_ckpt.pth'}",
        f"dataset={tmp_path / 'images'}",
        "grid.q=[0]",
        "grid.beta=[0]",
        f"output_dir={out}",
        *(f"metrics.{m}=false" for m in ("ms_ssim", "lpips", "dists", "fid")),
        "plots.official=null",
        "progress=false",
        "wandb.enabled=true",
        "wandb.probe_timeout=1",
    ]
    assert main(argv) == 0
    (line,) = [line for line in capsys.readouterr().out.splitlines() if "[crdr.wandb_mode]" in line]  # Hydra's log
    assert "unreachable (no answer within 1 s)" in line and f"wandb sync {out / 'wandb'}" in line
    (offline_run,) = (out / "wandb").glob("offline-run-*")
    assert b"results" in b"".join(p.read_bytes() for p in offline_run.rglob("*.wandb"))
    with pytest.raises(SystemExit) as stopped:
        main([*argv, "wandb.offline=false"])
    assert stopped.value.code == 2
    (line,) = [line for line in capsys.readouterr().out.splitlines() if "WandbUnreachableError" in line]
    assert "demanded (wandb.offline=false)" in line


def test_crdr_score_demanding_an_unreachable_wandb_is_a_one_line_error(wandb_env, refused_url, tmp_path, capsys):
    originals = tmp_path / "originals"
    originals.mkdir()
    write_image(torch.rand(1, 3, 48, 40), originals / "a.png")
    wandb_env(WANDB_BASE_URL=refused_url, WANDB_MODE="online")
    args = ["score", str(originals), "--reconstructions", str(originals), "--rates", str(originals)]
    code = main(
        [*args, "--codec", "PNG", "--metrics", "PSNR", "--no-progress", "--wandb", "p", "-o", str(tmp_path / "out")]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("crdr score: error: W&B") and "\n" not in err
