"""The device helper: its own module so that inference (stylize, evaluate, distributed setup)
does not import the training config to learn which device to use."""

from __future__ import annotations

import platform
from pathlib import Path

import torch

from fast_style.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; asking for an absent device is a config error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device={name!r}: use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={name}: CUDA is not available on this machine; use device=cpu or auto")
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"device={name!r}: use auto, cpu, cuda or cuda:N")
    return device


AMP_SETTINGS = ("auto", "none", "bf16")  # trainer.amp
BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # CPU matrix units that run bf16 natively (oneDNN uses them)


def cpu_description() -> tuple[str, list[str]]:
    """(CPU model, sorted feature flags) from /proc/cpuinfo; the platform's processor name and no
    flags elsewhere. What ``trainer.amp=auto`` and the machine profile of ``backend=auto`` decide by."""
    model, flags = "", []
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            name, _, value = line.partition(":")
            if name.strip() == "model name" and not model:
                model = value.strip()
            elif name.strip() in ("flags", "Features") and not flags:
                flags = sorted(value.split())
            if model and flags:
                break
    except OSError:
        pass
    return model or platform.processor() or platform.machine(), flags


def cpu_flags() -> set[str]:
    """The CPU's feature flags as Linux lists them in /proc/cpuinfo (empty elsewhere)."""
    return set(cpu_description()[1])


def check_amp(setting: object) -> str:
    """``trainer.amp`` if it is one of AMP_SETTINGS; else one ConfigError line."""
    if setting not in AMP_SETTINGS:
        raise ConfigError(f"trainer.amp={setting!r}: choose auto, none or bf16")
    return str(setting)


def decide_amp(setting: str, device: torch.device) -> tuple[bool, str]:
    """(bf16 autocast?, reason) for ``trainer.amp``. ``auto`` takes bf16 where the hardware runs
    it natively: CUDA devices that support it, CPUs with bf16 matrix units (faster at the same
    quality there: docs/PERFORMANCE.md); other CPUs would emulate bf16, slower than fp32."""
    check_amp(setting)
    if setting != "auto":
        return setting == "bf16", f"trainer.amp={setting}"
    if device.type == "cuda":
        ok = torch.cuda.is_bf16_supported()
        return ok, f"trainer.amp=auto: {'bf16' if ok else 'fp32 (this GPU has no bf16)'}"
    found = sorted(set(BF16_FLAGS) & cpu_flags())
    if found:
        return True, f"trainer.amp=auto: bf16 autocast (the CPU has {', '.join(found)})"
    return False, f"trainer.amp=auto: fp32 (the CPU lacks {' and '.join(BF16_FLAGS)}; bf16 would be emulated)"
