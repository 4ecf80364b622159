"""Data-parallel training with PyTorch's own engine (``torch.distributed`` + DDP), launched by torchrun.

    torchrun --nproc_per_node=4 scripts/train.py style=candy data.root=/data/coco/train2014

:func:`setup` reads the variables torchrun sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``, ``MASTER_PORT``) and initialises the default process group with NCCL on CUDA and
gloo on CPU (``trainer.ddp_backend`` overrides). Without them (a plain ``python scripts/train.py``)
nothing is initialised and every method here is a no-op, so single-process runs are unchanged.

Control messages (the stop flag every step, bad-file flags at log intervals, objects broadcast
from rank 0) go through a gloo group on the CPU, so they never force a host sync on the GPU
stream; with the gloo backend that is the default group itself.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from fast_style.checks import check_batch_split
from fast_style.device import resolve_device
from fast_style.errors import ConfigError

T = TypeVar("T")
BACKENDS = ("auto", "nccl", "gloo")


def launched_world_size() -> int:
    """Processes in the job as the launcher (torchrun) announced them; 1 without a launcher."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def launched_rank() -> int:
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


@dataclass
class Distributed:
    """Where this process stands in the job. ``world_size == 1``: not distributed, all no-ops."""

    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # we initialised the process group, so we destroy it
    ctrl: Any = None  # gloo group for CPU control messages; None = the default group

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier(group=self.ctrl)

    def any(self, flag: bool) -> bool:
        """True on every rank if ``flag`` is true on any rank (one tiny CPU all-reduce)."""
        if not self.enabled:
            return bool(flag)
        t = torch.tensor([1 if flag else 0], dtype=torch.int32)
        dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self.ctrl)
        return bool(t.item())

    def union_(self, flags: torch.Tensor) -> torch.Tensor:
        """In place: ``flags`` (bool, CPU) becomes the element-wise OR over all ranks."""
        if self.enabled:
            t = flags.to(torch.uint8)
            dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self.ctrl)
            flags.copy_(t.bool())
        return flags

    def mean_(self, tensor: torch.Tensor) -> torch.Tensor:
        """In place: the mean of ``tensor`` over all ranks (on its device, default group)."""
        if self.enabled:
            dist.all_reduce(tensor)
            tensor /= self.world_size
        return tensor

    def broadcast(self, obj: T) -> T:
        """Rank 0's ``obj`` on every rank (pickled; tensors travel on the CPU)."""
        if not self.enabled:
            return obj
        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0, group=self.ctrl)
        return box[0]

    def on_main(self, fn: Callable[[], T], share: Callable[[T], Any] | None = None) -> Any:
        """Run ``fn`` on rank 0 only (file reads, scans, downloads) and hand the result to every rank.

        Returns ``fn()`` on rank 0 and ``share(fn())`` (default: the result itself) on the others. An
        exception on rank 0 is raised on every rank, so no rank waits forever for a broadcast that
        never comes.
        """
        if not self.enabled:
            return fn()
        result: Any = None
        error: Exception | None = None
        if self.is_main:
            try:
                result = fn()
                payload = (True, share(result) if share else result)
            except Exception as e:  # noqa: BLE001 - re-raised below, on every rank
                error = e
                payload = (False, (type(e), e.args, str(e)))
        else:
            payload = None
        ok, value = self.broadcast(payload)
        if not ok:
            if self.is_main:
                raise error
            cls, args, text = value
            raise _rebuild(cls, args, text)
        return result if self.is_main else value

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()
            self.owns_group = False


def _rebuild(cls: type, args: tuple, text: str) -> Exception:
    """Rank 0's exception, rebuilt on another rank (the same type and message where possible)."""
    try:
        return cls(*args)
    except Exception:  # noqa: BLE001
        return RuntimeError(f"rank 0 failed: {cls.__name__}: {text}")


def check_backend(backend: str) -> str:
    """``trainer.ddp_backend``: auto (nccl on CUDA, gloo on CPU), nccl or gloo; else one ConfigError line."""
    if backend not in BACKENDS:
        raise ConfigError(f"trainer.ddp_backend={backend!r}: use auto (nccl on CUDA, gloo on CPU), nccl or gloo")
    return backend


def setup(device_name: str = "auto", backend: str = "auto", batch_size: int | None = None) -> Distributed:
    """The process group of a torchrun job (initialised here unless the caller already did), or a
    single-process :class:`Distributed` when no launcher set ``WORLD_SIZE`` > 1.

    ``batch_size`` is the GLOBAL batch: it must split evenly over the processes.
    """
    check_backend(backend)
    device = resolve_device(device_name)
    world_size = dist.get_world_size() if dist.is_available() and dist.is_initialized() else launched_world_size()
    if world_size <= 1:
        return Distributed(device=device)
    if not dist.is_available():
        raise ConfigError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed")
    if batch_size is not None:
        check_batch_split(batch_size, world_size)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        # One GPU per process: local rank N uses cuda:N (device=cuda:K is ignored under torchrun).
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(
                f"LOCAL_RANK={local_rank} but this node has {torch.cuda.device_count()} GPU(s); "
                "use --nproc_per_node <= the number of GPUs"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if backend == "auto":
        backend = "nccl" if device.type == "cuda" else "gloo"
    if backend == "nccl" and device.type != "cuda":
        raise ConfigError("trainer.ddp_backend=nccl needs CUDA devices; use gloo for CPU training")
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group(backend=backend)  # env:// rendezvous from torchrun's variables
    ctrl = None if dist.get_backend() == "gloo" else dist.new_group(backend="gloo")
    return Distributed(
        device=device, rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank,
        owns_group=owns, ctrl=ctrl,
    )
