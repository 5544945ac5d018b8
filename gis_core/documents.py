"""Printable documents (PDF/PNG) made offline with matplotlib, in Chinese and English.

Certificates and reports are drawn on :class:`matplotlib.figure.Figure` objects
(never pyplot: no global state, safe in a server thread) with a CJK font that ships with the
operating system (Debian ``fonts-noto-cjk``, installed by the bootstrap), so a document made
on a network without internet still shows every character.

Examples
--------
>>> fig = a4_figure()
>>> _ = fig.text(0.1, 0.9, "长治市 Changzhi", **cjk())
>>> pdf_bytes([fig])[:5]
b'%PDF-'
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any, Final

from matplotlib import font_manager
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from gis_core.errors import Conflict

#: Where Debian's fonts-noto-cjk puts the sans face; searched first, then fontconfig's list.
CJK_FONT_FILES: Final = (
    Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
    Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc"),
)
CJK_FAMILY: Final = "Noto Sans CJK SC"
#: A4 portrait in inches.
A4: Final = (8.27, 11.69)


class DocumentError(Conflict):
    """A document cannot be made on this machine (no CJK font); the message says what to
    install. A 409: the request is fine, the installation is not ready for it."""


@cache
def cjk_family() -> str:
    """Register the system's CJK font with matplotlib once and return its family name."""
    found = [p for p in CJK_FONT_FILES if p.exists()]
    if not found:
        found = [
            Path(f)
            for f in font_manager.findSystemFonts()
            if "NotoSansCJK" in Path(f).name or "NotoSerifCJK" in Path(f).name
        ]
    if not found:
        raise DocumentError(
            "no CJK font on this machine: install Debian's fonts-noto-cjk "
            "(`make run` installs it) to make documents in Chinese"
        )
    for path in found:
        font_manager.fontManager.addfont(str(path))
    names = {f.name for f in font_manager.fontManager.ttflist if "CJK" in f.name}
    return CJK_FAMILY if CJK_FAMILY in names else sorted(names)[0]


def cjk(**kwargs: Any) -> dict[str, Any]:
    """Text keyword arguments with the CJK family, e.g. ``ax.set_title(t, **cjk(size=14))``."""
    return {"family": cjk_family(), **kwargs}


def a4_figure(landscape: bool = False) -> Figure:
    """An empty A4 page (portrait unless ``landscape``)."""
    w, h = A4
    return Figure(figsize=(h, w) if landscape else (w, h))


def pdf_bytes(pages: Iterable[Figure]) -> bytes:
    """The pages as one PDF document."""
    buf = io.BytesIO()
    with PdfPages(buf) as pdf:
        for fig in pages:
            pdf.savefig(fig)
    return buf.getvalue()
