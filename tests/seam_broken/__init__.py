"""An application whose command group names a module that does not exist: the command line
must refuse the installation in one line, not a traceback (``tests/test_seam.py``)."""

from __future__ import annotations

from gis_core.application import Application, deferred

APP = Application(
    name="seam_broken",
    title_zh="坏命令",
    title_en="Broken command group",
    cli=deferred("tests.seam_broken.no_such_module:register"),
)
