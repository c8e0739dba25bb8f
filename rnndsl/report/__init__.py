"""The run report: one self-contained HTML page per trained run (html.py) and the training
curves it and curve.png draw (curves.py)."""

from .curves import panel_svgs, save_curve
from .html import build_report, write_report

__all__ = ["build_report", "panel_svgs", "save_curve", "write_report"]
