"""rnndsl: declare, train and draw recurrent neural networks for NLP.

    import rnndsl
    net = rnndsl.compile("bilstm(d=16) |> stack(2)", input_dim=8, seed=0)
    y = net(x, lengths=[5, 3])          # x (B, T, 8) -> y (B, T, 32)
"""

from .api import check, compile, load  # noqa: A004
from .autodiff import Tensor, no_grad
from .errors import Diagnostic, RnnError, SpecError
from .nn.network import Network
from .runs import Run, load_run

__version__ = "0.1.0"

__all__ = ["Diagnostic", "Network", "RnnError", "Run", "SpecError", "Tensor", "__version__",
           "check", "compile", "load", "load_run", "no_grad"]


def __getattr__(name: str):
    """``rnndsl.render`` on first use (it imports graphviz; ``import rnndsl`` stays light)."""
    if name == "render":
        import importlib

        return importlib.import_module(".render", __name__)
    raise AttributeError(f"module 'rnndsl' has no attribute {name!r}")
