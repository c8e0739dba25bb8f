"""The fused kernels: optional overrides of generic rules, each tested equal to the rule it
replaces, loaded by name through ``autodiff.backend.fused_module`` (None when Numba or CuPy is
missing, or ``RNNDSL_FUSED=0``), never imported by the code that may use them.

    ops_cpu.py     Numba: softmax rows and sums of runs for autodiff/ops.py and backend.py
    cells_cpu.py   Numba: the LSTM gate arithmetic of a step (nn/cells/lstm.py)
    optim_cpu.py   Numba: Adam, lazy Adam and SGD updates (train/optim.py)
    gpu.py         CuPy: the LSTM and GRU gates, the step product, Adam (nn/cells/, train/optim.py)

They sit at the stage of autodiff/: they import only ``autodiff.backend``.
"""
