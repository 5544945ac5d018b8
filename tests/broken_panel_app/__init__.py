"""An application with a broken console panel, kept in the tests: its ``broken`` panel throws
in ``mount(ctx)``. The console must show one line in that panel's place and go on: the same
application's ``steady`` panel, the other applications' tabs and the map keep working.

It brings no routes, tables or kinds, so it installs on the session's database as it is
(``CHANGZHI_APPS=all,tests.broken_panel_app``).
"""

from pathlib import Path

from gis_core.application import Application, Panel

HERE = Path(__file__).resolve().parent

APP = Application(
    name="broken_panel",
    title_zh="故障面板",
    title_en="Broken panel",
    console=HERE / "console",
    panels=(
        Panel("broken", "broken.js", "坏面板", "Broken", strings="strings.json"),
        Panel("steady", "steady.js", "好面板", "Steady", strings="strings.json"),
    ),
)
