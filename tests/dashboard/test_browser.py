"""The dashboard renders in a real (headless) Chromium with only locally served assets."""

from __future__ import annotations

import math
import time

import pytest
import torch

from fast_style.dashboard import VisdomLogger

from .conftest import legend_names, loaded_images, save_screenshot, severe_console_errors

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ENV = "starry_night"


def demo_image(height: int, width: int, phase: float) -> torch.Tensor:
    """A swirly, colourful stand-in for a painting, so the screenshot shows real image panels."""
    y, x = torch.meshgrid(torch.linspace(-1, 1, height), torch.linspace(-1, 1, width), indexing="ij")
    radius, angle = torch.sqrt(x**2 + y**2), torch.atan2(y, x)
    swirl = torch.sin(8 * radius - 3 * angle + phase)
    red = 0.15 + 0.35 * (1 + torch.sin(swirl * 2 + phase)) / 2
    green = 0.25 + 0.45 * (1 + swirl) / 2 * (1 - radius.clamp(0, 1) / 2)
    blue = 0.45 + 0.5 * (1 + torch.cos(6 * radius + phase)) / 2
    return torch.stack([red, green, blue]).clamp(0, 1)


def log_demo_run(port: int) -> None:
    gen = torch.Generator().manual_seed(0)
    logger = VisdomLogger(port=port, env=ENV, smoothing=0.9)
    for step in range(0, 400, 2):
        noise = 1 + 0.15 * float(torch.randn(1, generator=gen))
        content = (4.0 + 20.0 * math.exp(-step / 60)) * noise
        style = (2.0 + 60.0 * math.exp(-step / 40)) * noise
        tv = 0.4 + 0.3 * math.exp(-step / 200)
        logger.log_losses(step, {"content": content, "style": style, "tv": tv, "total": content + style + tv})
        logger.log_scalar("lr", step, 1e-3 if step < 300 else 1e-4)
        logger.log_scalar("images_per_s", step, 24.0 + float(torch.randn(1, generator=gen)))
        if step % 100 == 0 and step:
            val = 4.0 + 20.0 * math.exp(-step / 60) + 2.0 + 60.0 * math.exp(-step / 40) + 0.5
            logger.log_losses(step, {"content": val / 3, "style": val / 2, "total": val}, split="val")
    logger.log_image("style", demo_image(256, 256, 0.0), caption="style: starry_night")
    samples = torch.cat([demo_image(192, 192, p) for p in (0.5, 1.5, 2.5)], dim=2)
    logger.log_image("samples", samples, caption="step 400: stylized validation photos")
    assert logger.flush(10.0)
    logger.close()


def test_dashboard_renders_losses_and_images(visdom_server, browser) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    log_demo_run(visdom_server.port)
    browser.get(f"{visdom_server.url}/env/{ENV}")

    wanted = {"content", "style", "tv", "total", "total (smoothed)", "val total"}
    WebDriverWait(browser, 30).until(lambda d: wanted <= legend_names(d))
    WebDriverWait(browser, 15).until(
        lambda d: d.execute_script("return document.querySelectorAll('.js-plotly-plot').length") >= 3
        and loaded_images(d) >= 2
    )
    traces = browser.execute_script(
        "return document.querySelectorAll('.js-plotly-plot g.trace.scatter path.js-line').length"
    )
    assert traces >= 8
    time.sleep(1.0)  # let plotly finish its transitions before the screenshot

    save_screenshot(browser, "dashboard.png")  # synthetic data; docs/dashboard.png comes from test_training.py

    errors = severe_console_errors(browser)
    assert errors == [], "browser console errors:\n" + "\n".join(errors)
