"""Typed schemas of the single-purpose scripts' configs (stylize, export, dashboard).

Each ``configs/<script>.yaml`` starts its defaults list with ``<script>_schema``, one of these
dataclasses registered in hydra's ConfigStore, so every command-line value is checked against its
type while hydra composes the config: ``scale=abc`` or ``port=abc`` is an OmegaConf validation
error, which :func:`fast_style.cli.run_hydra_main` turns into one ``error:`` line and exit code 2,
the same way as an unknown key. Values with more than one form (``batch_size``: an integer or
``auto``) are typed ``Any`` here and checked by the library function that takes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional


@dataclass
class StylizeSchema:
    ckpt: Optional[str] = None
    input: Optional[str] = None
    output: Optional[str] = None
    scale: float = 1.0
    device: str = "auto"
    batch_size: Any = "auto"
    workers: Any = "auto"
    tile_size: Optional[int] = None
    max_pixels: Any = "auto"
    backend: str = "auto"
    precision: str = "fp32"
    compile: bool = False
    strength: float = 1.0
    preserve_color: Optional[str] = None
    style_name: Optional[str] = None
    style_mix: Any = None  # {name: weight}; checked by the Stylizer (a typed Dict breaks OmegaConf merges)
    temporal_smoothing: float = 0.0
    verbose: bool = False


@dataclass
class ExportSchema:
    ckpt: Optional[str] = None
    format: str = "onnx"
    output: Optional[str] = None
    overwrite: bool = False  # replace a trained checkpoint at output= (checkpoint.check_output_file)
    verbose: bool = False


@dataclass
class DashboardSchema:
    host: str = "127.0.0.1"
    port: int = 8097
    env_path: Optional[str] = "runs/visdom"
    extra_args: List[str] = field(default_factory=list)
    verbose: bool = False


SCHEMAS = {"stylize_schema": StylizeSchema, "export_schema": ExportSchema, "dashboard_schema": DashboardSchema}


def register_schemas() -> None:
    """Store the schemas in hydra's ConfigStore (call before the ``@hydra.main`` function runs)."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    for name, node in SCHEMAS.items():
        store.store(name=name, node=node)
