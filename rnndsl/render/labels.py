"""Pieces of Graphviz HTML-like labels: escaped text, sub- and superscripts, numbers."""

from __future__ import annotations

import html
import re
from typing import Any


def esc(text: Any) -> str:
    """Text made safe inside an HTML-like label."""
    return html.escape(str(text), quote=False)


def sub(base: str, i: Any, sup: str = "") -> str:
    """``base`` with subscript ``i`` and an optional superscript: s_3^f."""
    s = f"{base}<SUB>{i}</SUB>"
    return s + (f"<SUP>{sup}</SUP>" if sup else "")


def small(text: str, size: int = 8) -> str:
    """A second, smaller line of a label."""
    return f'<BR/><FONT POINT-SIZE="{size}">{text}</FONT>'


def fmt_norm(x: float) -> str:
    """A gradient norm as printed on the pictures (tests read it back)."""
    return f"{x:.2e}"


def plain(label: str) -> str:
    """A label as terminal text: <SUB>i</SUB> -> _i, other tags dropped, entities decoded."""
    text = re.sub(r"<SUB>(.*?)</SUB>", r"_\1", label)
    text = re.sub(r"<SUP>(.*?)</SUP>", r"^\1", text)
    return html.unescape(re.sub(r"<[^>]+>", "", text))
