"""VisdomLogger against a real visdom server: data lands exactly, outages never stall training."""

from __future__ import annotations

import logging
import math
import signal
import time

import pytest
import torch

from fast_style.dashboard import (
    DashboardError,
    VisdomLogger,
    build_logger,
    free_port,
    start_server,
    stop_server,
)
from fast_style.loggers import NullLogger

from .conftest import read_env, traces, wait_for


def loss_values(step: int) -> dict[str, float]:
    content = 2.0 + 10.0 * math.exp(-step / 10)
    style = 1.0 + 5.0 * math.exp(-step / 20)
    tv = 0.01 * (step + 1)
    return {"content": content, "style": style, "tv": tv, "total": content + style + tv}


def outage_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno == logging.WARNING and "unreachable" in r.getMessage()]


def test_losses_scalars_and_images_arrive_exactly(visdom_server) -> None:
    steps = 40
    logger = VisdomLogger(port=visdom_server.port, env="exact", smoothing=0.5)
    for step in range(steps):
        logger.log_losses(step, loss_values(step))
        logger.log_scalar("lr", step, 1e-3 * 0.9**step)
        if step % 10 == 0:
            logger.log_losses(step, {"total": 1.5}, split="val")
    logger.log_scalar("images_per_s", 0, float("nan"))  # must become a gap, not break JSON
    logger.log_image("style", torch.rand(3, 32, 48), caption="starry night")
    assert logger.flush(5.0)
    logger.log_losses(steps, loss_values(steps))  # an append after the initial full send
    logger.close()

    env = read_env(visdom_server.port, "exact")
    assert {"losses", "lr", "images_per_s", "style"} <= set(env)
    lines = traces(env["losses"])
    for name in ("content", "style", "tv", "total"):
        assert lines[name]["x"] == list(range(steps + 1))
        expected = [loss_values(s)[name] for s in range(steps + 1)]
        assert lines[name]["y"] == pytest.approx(expected)
    assert lines["val total"]["x"] == [0, 10, 20, 30]
    assert lines["val total"]["y"] == [1.5] * 4
    ema, smoothed = 0.0, []  # debiased EMA of log(total) with smoothing 0.5 (log-scale axis)
    for n, s in enumerate(range(steps + 1), start=1):
        ema = 0.5 * ema + 0.5 * math.log(loss_values(s)["total"])
        smoothed.append(math.exp(ema / (1 - 0.5**n)))
    assert smoothed[0] == pytest.approx(loss_values(0)["total"])
    assert lines["total (smoothed)"]["y"] == pytest.approx(smoothed)
    assert env["losses"]["content"]["layout"]["yaxis"]["type"] == "log"
    assert traces(env["lr"])["lr"]["y"] == pytest.approx([1e-3 * 0.9**s for s in range(steps)])
    assert traces(env["images_per_s"])["images_per_s"]["y"] == [None]
    assert env["style"]["type"] == "image"
    assert env["style"]["content"]["src"].startswith("data:image/png;base64,")
    assert env["style"]["content"]["caption"] == "starry night"


def test_closed_port_warns_once_and_never_blocks(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="fast_style.dashboard")
    logger = VisdomLogger(port=free_port(), env="nowhere", retry_interval=0.2, flush_interval=0.05)
    worst = 0.0
    for step in range(300):
        start = time.perf_counter()
        logger.log_losses(step, loss_values(step))
        worst = max(worst, time.perf_counter() - start)
        if step % 50 == 0:
            time.sleep(0.1)  # let the worker retry a few times meanwhile
    start = time.perf_counter()
    assert not logger.flush(0.5)
    logger.close()
    assert time.perf_counter() - start < 3.0
    assert worst < 0.05, f"slowest log_losses call took {worst * 1000:.1f} ms"
    assert len(outage_warnings(caplog)) == 1


@pytest.mark.slow
def test_server_killed_and_restarted_gets_full_history(tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="fast_style.dashboard")
    port = free_port()
    proc = start_server(port=port, env_path=tmp_path / "first")
    logger = VisdomLogger(port=port, env="restart", retry_interval=0.2, flush_interval=0.05, timeout=1.0)
    try:
        for step in range(10):
            logger.log_losses(step, loss_values(step))
        assert logger.flush(5.0)
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)

        for step in range(10, 20):  # logged while the server is dead: kept in memory
            start = time.perf_counter()
            logger.log_losses(step, loss_values(step))
            assert time.perf_counter() - start < 0.05
            time.sleep(0.03)
        assert wait_for(lambda: len(outage_warnings(caplog)) == 1, timeout=5)

        proc = start_server(port=port, env_path=tmp_path / "second")
        for step in range(20, 30):
            logger.log_losses(step, loss_values(step))
        assert wait_for(lambda: traces(read_env(port, "restart")["losses"])["total"]["x"] == list(range(30)))
        assert logger.flush(5.0)
        lines = traces(read_env(port, "restart")["losses"])
        for name in ("content", "style", "tv", "total"):
            assert lines[name]["x"] == list(range(30))
            assert lines[name]["y"] == pytest.approx([loss_values(s)[name] for s in range(30)])
        assert len(outage_warnings(caplog)) == 1
        assert any("is back" in r.getMessage() for r in caplog.records)
    finally:
        logger.close()
        stop_server(proc)


def test_full_queue_drops_oldest(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="fast_style.dashboard")
    logger = VisdomLogger(port=free_port(), env="tiny", max_queue=5, flush_interval=30.0)
    for step in range(20):  # the worker sleeps meanwhile, so only the newest 5 survive
        logger.log_losses(step, {"total": float(step)})
    logger.close()
    assert logger._windows["losses"].traces["total"][0] == [15, 16, 17, 18, 19]
    assert any("dropped 15 events" in r.getMessage() for r in caplog.records)


def test_build_logger_and_null_logger() -> None:
    null = build_logger("none", port=1234)
    assert type(null) is NullLogger
    null.log_losses(0, {"total": 1.0})
    null.log_scalar("lr", 0, 0.1)
    null.log_image("style", torch.zeros(3, 4, 4))
    null.close()
    with pytest.raises(DashboardError, match="unknown logger 'tensorboard'"):
        build_logger("tensorboard")
    with pytest.raises(DashboardError, match="smoothing"):
        VisdomLogger(smoothing=1.5)
    logger = build_logger("visdom", port=free_port(), env="built")
    assert isinstance(logger, VisdomLogger)
    with pytest.raises(ValueError, match=r"\(3,H,W\)"):
        logger.log_image("samples", torch.zeros(2, 3, 4, 4))
    logger.close()


def test_a_training_names_its_dashboard_once(tmp_path, tiny_photos, style_image, caplog):
    """logger=visdom: where to look (URL of the run's env) is said once, at start, on the console
    and in train.log (both are fed by the fast_style.train logger)."""
    from fast_style.train import train
    from tests.helpers import tiny_config

    class Named(NullLogger):  # a logger that knows its server, as VisdomLogger does
        url, env = "http://127.0.0.1:8097", "starry_night-1"

    with caplog.at_level(logging.INFO, logger="fast_style.train"):
        train(tiny_config(tmp_path, tiny_photos, 2, style_image), logger=Named())
    lines = [r.getMessage() for r in caplog.records if "dashboard:" in r.getMessage()]
    assert lines == ["dashboard: http://127.0.0.1:8097/env/starry_night-1 (env starry_night-1; start the server "
                     "with python scripts/dashboard.py)"]
    with caplog.at_level(logging.INFO, logger="fast_style.train"):
        caplog.clear()
        train(tiny_config(tmp_path / "b", tiny_photos, 2, style_image), logger=NullLogger())
    assert "dashboard:" not in caplog.text  # logger=none: no dashboard to name
