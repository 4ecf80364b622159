"""fast-style: fast neural style transfer (Johnson, Alahi, Fei-Fei 2016) in PyTorch."""

from fast_style.errors import FastStyleError

__version__ = "0.1.0"
__all__ = ["FastStyleError", "__version__"]
