"""Checkpoints: versioned, written atomically, loaded with ``weights_only=True``.

A checkpoint carries everything stylize needs (model config + weights + style name) and
everything resume needs (optimizer, step, RNG, resolved config). Only tensors and plain Python
containers go in, so loading never runs pickled code.

A bare name (``ckpt=starry_night``) that is not a file resolves to a network shipped with the
package, ``fast_style/pretrained/<name>.pt``: the same format with fp16 weights and no optimizer
or RNG state (:func:`pretrained_state`; half the size in git), loaded back to fp32, so a fresh
clone can stylize before it has trained anything.
"""

from __future__ import annotations

import io
import logging
import os
import re
from pathlib import Path
from typing import Any

import torch

from fast_style.errors import CheckpointError, ConfigError, first_line
from fast_style.fileio import atomic_write, check_not_shipped
from fast_style.models.transformer import ImageTransformNet, TransformerConfig

log = logging.getLogger(__name__)

FORMAT = "fast-style-checkpoint"
VERSION = 1
PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"
# What a shipped network keeps: enough to stylize, export and evaluate, nothing to resume.
PRETRAINED_KEYS = ("model_config", "model", "style", "styles", "loss_net", "step", "config")


def shipped_networks() -> list[str]:
    """Names accepted as ``ckpt=<name>``: the ``.pt`` files in ``fast_style/pretrained``."""
    return sorted(p.stem for p in PRETRAINED_DIR.glob("*.pt"))


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A file path as given, or, when no such file exists and ``path`` is a bare name (no folder,
    no suffix), the shipped ``fast_style/pretrained/<name>.pt``. A local file always wins, so a
    network trained to ``./starry_night`` is never shadowed by the shipped one."""
    given = Path(path).expanduser()
    bare = given.parent == Path(".") and not given.suffix
    shipped = PRETRAINED_DIR / f"{given.name}.pt"
    if given.is_file() or not bare:
        if bare and shipped.is_file():  # say which of the two same-named networks this is
            log.warning("%s: using the local file ./%s, not the shipped network of that name", given, given)
        return given
    if shipped.is_file():
        if given.exists():  # a folder of that name is not a checkpoint: the shipped network, said once
            log.warning("%s: ./%s is a folder, not a checkpoint; using the shipped network %s",
                        given, given, shipped.stem)
        return shipped
    if given.exists():
        return given  # a folder: load_checkpoint says what it is
    names = ", ".join(shipped_networks()) or "none in this installation"
    raise CheckpointError(f"{given}: no such checkpoint file, and no shipped network of that name (shipped: {names})")


def pretrained_state(state: dict[str, Any]) -> dict[str, Any]:
    """The part of a training checkpoint that is shipped in ``fast_style/pretrained``: the weights
    in fp16 (half the bytes; the 8-bit outputs are unchanged to within a grey level or so) and
    the metadata stylize/export/evaluate read, without the optimizer and RNG state."""
    out = {k: state[k] for k in PRETRAINED_KEYS if k in state}
    out["model"] = {
        k: v.detach().to(torch.float16) if v.is_floating_point() else v for k, v in state["model"].items()
    }
    return out


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike, allow_shipped: bool = False) -> Path:
    """Write atomically (see :func:`fast_style.fileio.atomic_write`): a run killed at any instant
    leaves either the previous checkpoint or the new one, and a full disk leaves the previous one.
    ``fast_style/pretrained`` is refused unless ``allow_shipped`` (:func:`ship_network`)."""
    path = Path(path)
    state = {"format": FORMAT, "version": VERSION, **state}
    # Serialise in memory first: torch.save straight into a file turns a failing write (disk full)
    # into an opaque RuntimeError from its zip writer; a plain write keeps the OSError and errno.
    buffer = io.BytesIO()
    torch.save(state, buffer)
    try:
        with atomic_write(path, allow_shipped=allow_shipped) as f:
            f.write(buffer.getbuffer())
    except OSError as e:  # disk full, quota, read-only folder: one line, the old file is intact
        reason = e.strerror or first_line(e)
        raise CheckpointError(
            f"{path}: cannot write the checkpoint ({reason}); any previous checkpoint there is unchanged"
        ) from e
    return path


def ship_network(source: str | os.PathLike, name: str) -> Path:
    """Add a finished training's network to ``fast_style/pretrained/<name>.pt``
    (:func:`pretrained_state`): the one writer allowed there (developers shipping a style)."""
    from fast_style.fileio import SHIPPED_DIR, safe_name

    return save_checkpoint(pretrained_state(load_checkpoint(source)), SHIPPED_DIR / f"{safe_name(name)}.pt",
                           allow_shipped=True)


def _not_a_torch_file(path: Path) -> str | None:
    """Why ``path`` cannot be a file ``torch.save`` wrote (a zip archive, or a legacy pickle that
    starts with the protocol byte 0x80), from its first bytes; None when it may be one.

    torch.load's own errors for a text file range from ``KeyError: '101'`` to its pickled-objects
    advice; the head of the file says plainly what it is."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError as e:
        return e.strerror or first_line(e)
    if not head:
        return "it is empty"
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":
        return None
    try:
        head.decode("utf-8")
        return "it is a text file, not a PyTorch file"
    except UnicodeDecodeError:
        return "it is not a PyTorch file (neither a zip archive nor a pickle)"


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and validate; every way a file can be wrong is one CheckpointError line. ``path`` may
    be a shipped network's name (:func:`resolve_checkpoint`); fp16 weights come back as fp32."""
    path = resolve_checkpoint(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder; pass the .pt file")
    if not path.is_file():
        raise CheckpointError(f"{path}: not a regular file (a pipe or device?); pass the .pt file")
    why = _not_a_torch_file(path)
    if why:
        raise CheckpointError(f"{path}: not a readable fast-style checkpoint ({why})")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - truncated zip, random bytes, pickled code, ...
        raise CheckpointError(f"{path}: not a readable fast-style checkpoint ({load_failure_reason(e)})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        hint = ""
        if isinstance(state, dict) and any(str(k).startswith(("conv1.", "in1.", "res1.")) for k in state):
            hint = " (it looks like a classic TransformerNet state_dict)"
        raise CheckpointError(f"{path}: not a fast-style checkpoint{hint}")
    version = state.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version} is newer than this fast-style supports "
            f"({VERSION}); upgrade fast-style"
        )
    for key in ("model_config", "model"):
        if key not in state:
            raise CheckpointError(f"{path}: checkpoint lacks {key!r}")
    problem = _metadata_problem(state)
    if problem:
        raise CheckpointError(f"{path}: {problem}")
    if isinstance(state["model"], dict):  # shipped networks store fp16; every consumer computes in fp32
        state["model"] = {
            k: v.float() if isinstance(v, torch.Tensor) and v.is_floating_point() else v
            for k, v in state["model"].items()
        }
    return state


def _metadata_problem(state: dict[str, Any]) -> str | None:
    """What is wrong with a checkpoint's plain-data entries (they come from a file, so any type is
    possible: ``styles: 5`` must be one line here, not a TypeError in whatever reads it later)."""
    if not isinstance(state["model"], dict):
        return f"its 'model' entry is a {type(state['model']).__name__}, not a state dict"
    config = state["model_config"]
    if not isinstance(config, dict):
        return f"its model_config is a {type(config).__name__}, not a mapping"
    for key, value in config.items():
        if isinstance(value, bool) or not isinstance(value, int):
            return f"model_config.{key} must be an integer, got {value!r}"
    if "style" in state and not isinstance(state["style"], str):
        return f"its style name must be text, got {type(state['style']).__name__}"
    if "styles" in state:
        styles = state["styles"]
        if not isinstance(styles, (list, tuple)) or not all(isinstance(n, str) for n in styles) or not styles:
            return f"its styles entry must be a list of style names, got {styles!r:.80}"
        n_styles = config.get("n_styles", 1)
        if len(styles) != n_styles:
            return f"it names {len(styles)} styles but its network has model_config.n_styles={n_styles}"
    if "step" in state and (isinstance(state["step"], bool) or not isinstance(state["step"], int)):
        return f"its step must be an integer, got {state['step']!r:.40}"
    return None


def load_failure_reason(error: BaseException) -> str:
    """One short line for why ``torch.load(weights_only=True)`` refused a file.

    torch's own message for a file holding pickled objects advises re-running with
    ``weights_only=False``, i.e. running whatever code the file carries: never repeat that. Only
    a pickle that names a Python class or function (``Unsupported global``) holds such objects;
    anything else weights_only refused is a damaged or foreign pickle.
    """
    text = str(error).strip()
    if text.startswith("Weights only load failed") or "weights_only" in text:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
        if found:
            return (f"it holds pickled Python objects ({found.group(1)}), which fast-style never loads "
                    "since they can run code")
        return "it is not a plain PyTorch file of tensors (a damaged or foreign pickle)"
    return first_line(error, 200)


def _shape_problem(config: TransformerConfig, weights: dict[str, Any]) -> str | None:
    """Whether ``config`` matches the weights, decided before the network is built: a crafted
    ``n_residual=10**7`` or ``width=10**7`` would fill memory while building, long before
    ``load_state_dict`` could say the weights do not fit."""
    blocks = {int(m.group(1)) for k in weights if (m := re.match(r"residuals\.(\d+)\.", str(k)))}
    if config.n_residual != len(blocks):
        return f"model_config.n_residual={config.n_residual}, but the weights hold {len(blocks)} residual blocks"
    with torch.device("meta"):  # shapes only: no memory, whatever width/n_styles say
        skeleton = ImageTransformNet(config).state_dict()
    for key, expected in skeleton.items():
        got = weights.get(key)
        if not isinstance(got, torch.Tensor):
            return f"missing weight {key!r}"
        if tuple(got.shape) != tuple(expected.shape):
            return f"{key} has shape {tuple(got.shape)}, model_config needs {tuple(expected.shape)}"
    extra = [k for k in weights if k not in skeleton]
    if extra:
        return f"unexpected weight {extra[0]!r}"
    return None


def model_from_checkpoint(state: dict[str, Any]) -> ImageTransformNet:
    """Rebuild the network from the config stored in the checkpoint (not from user flags).

    Refused in one line: a config that does not match the weights (checked on shapes before
    anything is allocated), and non-finite weights, which would give a black or grey image with
    exit 0 (a training that diverged, or a damaged file)."""
    try:
        config = TransformerConfig(**state["model_config"])
        if min(config.width, config.n_styles) < 1 or config.n_residual < 0:
            raise ValueError(f"width and n_styles must be >= 1 and n_residual >= 0, got {config}")
        problem = _shape_problem(config, state["model"])
        if problem:
            raise ValueError(problem)
        model = ImageTransformNet(config)
        model.load_state_dict(state["model"])
    except (TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"checkpoint weights do not match its model config: {first_line(e)}") from None
    bad = [k for k, v in model.state_dict().items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
        raise CheckpointError(
            f"checkpoint weights are not finite (NaN or inf in {bad[0]}{more}): the training diverged or "
            "the file is damaged; it would give a blank image"
        )
    return model.eval()


def check_output_file(
    output: str | os.PathLike, inputs: tuple[str | os.PathLike, ...] = (), overwrite: bool = False,
    key: str = "output", way_out: str = "pass overwrite=true to replace it, or choose another output",
) -> Path:
    """The one "never replace a user's file without being told" rule, for every command that
    writes a file the user names (convert, export; training's final checkpoint adds its own
    same-network rule, :func:`check_final_replacement`). Checked before any work:

    - never one of the command's ``inputs`` (resolved paths compared, so ``./a.pt``, ``a.pt`` and
      a symlink to it are the same file), whatever ``overwrite`` says;
    - never a shipped network (:func:`fast_style.fileio.check_not_shipped`), whatever ``overwrite`` says;
    - never a folder;
    - never a trained checkpoint (one with an optimizer state or a step > 0: hours of training,
      maybe the only copy) unless ``overwrite``.
    """
    out = Path(output).expanduser()
    check_not_shipped(out, key)
    resolved = out.resolve()
    for source in inputs:
        if resolved == Path(source).expanduser().resolve():
            raise ConfigError(f"{key}={output} is the input file {source}; choose another output")
    if out.is_dir():
        raise ConfigError(f"{key}={output} is a folder; name a file")
    if out.exists() and not overwrite:
        trained = _training_step(out)
        if trained is not None:
            raise ConfigError(f"{key}={output} holds a trained checkpoint (step {trained}); {way_out}")
    return out


def _training_step(path: Path) -> int | None:
    """The step of a trained fast-style checkpoint at ``path`` (one with an optimizer or a step
    > 0), None for anything else (a converted network, an export, an unrelated file)."""
    if not path.is_file() or _not_a_torch_file(path):
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - not a checkpoint: not a training to protect
        return None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        return None
    step = state.get("step", 0)
    step = step if isinstance(step, int) else 0
    return step if ("optimizer" in state or step > 0) else None


_CLASSIC_NORM_STATS = (".running_mean", ".running_var", ".num_batches_tracked")


def _classic_key_map(n_residual: int) -> dict[str, str]:
    """Module prefix in pytorch/examples' TransformerNet -> prefix in our ImageTransformNet."""
    mapping = {
        "conv1.conv2d": "encoder.0.0.1", "in1": "encoder.0.1",
        "conv2.conv2d": "encoder.1.0.1", "in2": "encoder.1.1",
        "conv3.conv2d": "encoder.2.0.1", "in3": "encoder.2.1",
        "deconv1.conv2d": "decoder.0.1.1", "in4": "decoder.0.2",
        "deconv2.conv2d": "decoder.1.1.1", "in5": "decoder.1.2",
        "deconv3.conv2d": "decoder.2.1",
    }
    for i in range(n_residual):
        ours = f"residuals.{i}.block"
        mapping |= {
            f"res{i + 1}.conv1.conv2d": f"{ours}.0.0.1", f"res{i + 1}.in1": f"{ours}.0.1",
            f"res{i + 1}.conv2.conv2d": f"{ours}.1.1", f"res{i + 1}.in2": f"{ours}.2",
        }
    return mapping


def convert_classic_state_dict(classic: dict[str, Any], style: str = "style") -> dict[str, Any]:
    """A pytorch/examples ``TransformerNet`` state_dict -> a fast-style checkpoint state (no optimizer).

    Same topology (9-3-3 encoder, residual blocks, nearest-upsample + conv decoder, affine instance
    norm, reflection padding), other module names, and another pixel range: the classic net reads
    and writes 0-255, ours 0-1. So the first conv's weights are multiplied by 255 (it sees x/255;
    its bias is removed by the instance norm that follows anyway, but it is kept exact) and the last
    conv's weight and bias are divided by 255. Old files may carry instance-norm running stats
    (saved by PyTorch < 0.4); they are unused with ``track_running_stats=False`` and dropped.
    """
    if not isinstance(classic, dict) or "conv1.conv2d.weight" not in classic:
        raise CheckpointError("not a classic TransformerNet state_dict (no conv1.conv2d.weight)")
    tensors = {
        k: v for k, v in classic.items() if isinstance(v, torch.Tensor) and not k.endswith(_CLASSIC_NORM_STATS)
    }
    width = int(tensors["conv1.conv2d.weight"].shape[0])
    n_residual = 0
    while f"res{n_residual + 1}.conv1.conv2d.weight" in tensors:
        n_residual += 1
    mapping = _classic_key_map(n_residual)
    model: dict[str, torch.Tensor] = {}
    for key, value in tensors.items():
        prefix, _, leaf = key.rpartition(".")
        if prefix not in mapping:
            raise CheckpointError(f"classic state_dict has an unexpected entry {key!r}")
        model[f"{mapping[prefix]}.{leaf}"] = value.detach().clone().float()
    model["encoder.0.0.1.weight"] *= 255.0
    model["decoder.2.1.weight"] /= 255.0
    model["decoder.2.1.bias"] /= 255.0
    config = TransformerConfig(width=width, n_residual=n_residual)
    state = {"model_config": config.to_dict(), "model": model, "style": style, "loss_net": "unknown", "step": 0,
             "converted_from": "pytorch/examples TransformerNet"}
    model_from_checkpoint(state)  # every expected weight present with the right shape, or a clear error
    return state


def load_classic_state_dict(path: str | os.PathLike) -> dict[str, Any]:
    """Read a classic ``.pth``/``.model`` file safely (``weights_only=True``)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    why = _not_a_torch_file(path)
    if why:
        raise CheckpointError(f"{path}: not a readable state_dict ({why})")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise CheckpointError(f"{path}: not a readable state_dict ({load_failure_reason(e)})") from None


# What makes two trainings "the same network": the style(s) learned, the loss network and loss
# that judged them, and the architecture. Everything else (data, lr, intervals, device, speed
# switches) only changes how far or how fast the same network got.
_STYLE_KEYS = ("name", "image", "url", "size", "preserve_color")


def _style_identity(style: dict[str, Any]) -> dict[str, Any]:
    out = {k: style.get(k) for k in _STYLE_KEYS}
    if out["image"]:
        out["image"] = str(Path(str(out["image"])).expanduser().resolve())
    return out


def network_identity(config: dict[str, Any] | None, model_config: dict[str, Any], label: str,
                     loss_net: str) -> dict[str, Any]:
    """Flat ``{dotted key: value}`` of what defines a trained network (see :data:`_STYLE_KEYS`);
    ``config`` is a checkpoint's ``config`` entry (a resolved TrainConfig as plain containers),
    absent from converted checkpoints, which then only have their label and loss network."""
    flat: dict[str, Any] = {"style": label, "loss_net.name": loss_net}
    flat |= {f"model.{k}": v for k, v in sorted(model_config.items())}
    if config is None:
        return flat
    styles = config.get("styles") or []
    if styles:
        for i, s in enumerate(styles):
            flat |= {f"styles[{i}].{k}": v for k, v in _style_identity(s).items()}
    else:
        flat |= {f"style.{k}": v for k, v in _style_identity(config.get("style", {})).items()}
    flat["loss_net.weights"] = config.get("loss_net", {}).get("weights")
    for k, v in sorted((config.get("loss") or {}).items()):
        flat[f"loss.{k}"] = list(v) if isinstance(v, (list, tuple)) else v
    return flat


def identity_of_state(state: dict[str, Any]) -> dict[str, Any]:
    """:func:`network_identity` of a loaded checkpoint."""
    return network_identity(state.get("config"), dict(state.get("model_config", {})), str(state.get("style")),
                            str(state.get("loss_net")))


def identity_differences(old: dict[str, Any], new: dict[str, Any], keys: tuple[str, ...] | None = None,
                         shown: int = 3) -> list[str]:
    """``key: old -> new`` for each differing key (of ``keys``, default all), at most ``shown``."""
    names = [k for k in dict.fromkeys([*old, *new]) if keys is None or k.split(".")[0].split("[")[0] in keys]
    diffs = [f"{k}: {old.get(k, '(none)')} -> {new.get(k, '(none)')}" for k in names if old.get(k) != new.get(k)]
    if len(diffs) > shown:
        diffs = [*diffs[:shown], f"and {len(diffs) - shown} more"]
    return diffs


def check_final_replacement(path: str | os.PathLike, identity: dict[str, Any], step: int) -> None:
    """Refuse to replace the final checkpoint at ``path`` by another network or by one trained less.

    A final checkpoint is what stylize and export use, often the only copy of hours of training:
    it may only be replaced by the same network (:func:`network_identity`) at the same or a later
    step. The caller skips this check when the user passed ``overwrite=true``. A file there that
    is not a readable checkpoint is refused too (it may be anything the user keeps there).
    """
    path = Path(path)
    if not path.exists():
        return
    way_out = "pass overwrite=true to replace it, or ckpt_out=<another file>"
    try:
        old_state = load_checkpoint(path)
    except CheckpointError as e:
        raise CheckpointError(f"{e}; it is in the way of this run's final checkpoint: {way_out}") from None
    diffs = identity_differences(identity_of_state(old_state), identity)
    if diffs:
        raise CheckpointError(f"{path} holds another network ({'; '.join(diffs)}); {way_out}")
    old_step = int(old_state.get("step", 0))
    if step < old_step:
        raise CheckpointError(
            f"{path} holds this network trained to step {old_step}, further than this run's step {step}; {way_out}"
        )
