"""Networks: the trainable ImageTransformNet and the frozen loss networks."""

from fast_style.models.loss_nets import (
    LOSS_NETS,
    CaffeVGG19,
    LossNet,
    PackedVGG16,
    TorchVGG19,
    VGGOutputs,
    build_loss_net,
)
from fast_style.models.transformer import ImageTransformNet, TransformerConfig

__all__ = [
    "LOSS_NETS",
    "CaffeVGG19",
    "ImageTransformNet",
    "LossNet",
    "PackedVGG16",
    "TorchVGG19",
    "TransformerConfig",
    "VGGOutputs",
    "build_loss_net",
]
