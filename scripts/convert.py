"""Convert a classic pytorch/examples TransformerNet: ``python scripts/convert.py input=old.pth
output=checkpoints/x.pt style=name``. The logic lives in fast_style.checkpoint."""

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from fast_style.checkpoint import (
    check_output_file,
    convert_classic_state_dict,
    load_classic_state_dict,
    save_checkpoint,
)
from fast_style.cli import require, run_hydra_main, style_argument, user_errors
from fast_style.fileio import safe_name
from fast_style.script_configs import register_configs

register_configs()  # the options' dataclasses (defaults, types): fast_style/script_configs.py


@hydra.main(version_base="1.3", config_path="../configs", config_name="convert")
def main(cfg: DictConfig) -> None:
    with user_errors(cfg.verbose):
        require(cfg.input, "input", ": a pytorch/examples TransformerNet state_dict (.pth/.model)")
        style = str(cfg.style_name or Path(cfg.input).stem)
        output = Path(cfg.output or f"checkpoints/{safe_name(style)}.pt")
        check_output_file(output, (cfg.input,), bool(cfg.overwrite),
                          way_out="pass overwrite=true to replace it, or output=<another file>")
        state = convert_classic_state_dict(load_classic_state_dict(cfg.input), style=style)
        save_checkpoint(state, output)
    config = state["model_config"]
    print(f"wrote {output} (style {style}, width {config['width']}, {config['n_residual']} residual blocks)")


if __name__ == "__main__":
    sys.argv[1:] = style_argument(sys.argv[1:])
    run_hydra_main(main)
