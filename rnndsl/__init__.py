"""rnndsl: declare, train and draw recurrent neural networks for NLP."""

from .autodiff import Tensor, no_grad
from .errors import RnnError, SpecError

__version__ = "0.1.0"

__all__ = ["RnnError", "SpecError", "Tensor", "__version__", "no_grad"]
