"""The console's reading of the device kinds (web/console/kinds.js), run in Node: thresholds as
GET /apps describes them, tested as realtime/rules.py tests them but without its hysteresis.

Known answers, at the boundary and on either side of it: above and below are strict, outside
keeps [low, high], a site threshold or a permit limit replaces the rule's own limit when the
device has one, and a rule with no limit at all says nothing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
KINDS_JS = REPO / "web" / "console" / "kinds.js"

# What kinds.js needs of a browser to be imported: a language store (i18n.js reads it).
SCRIPT = """
globalThis.localStorage = { getItem: () => null, setItem: () => {} };
const k = await import(process.argv[1]);
const cases = JSON.parse(process.argv[2]);
k.setKinds(cases.kinds);
const out = cases.checks.map(([kind, reading, site, permit]) =>
  k.overThreshold(kind, reading, site, permit));
console.log(JSON.stringify({
  out, kinds: k.KINDS, mobile: k.isMobile('unit'), shape: k.shapeIndex('gauge'),
  unknownShape: k.shapeIndex('nosuch'), field: k.primaryField('gauge'),
}));
"""


def _threshold(field: str, test: str, **kw: Any) -> dict[str, Any]:
    base = {"rule": f"r.{field}", "field": field, "test": test, "limit": None, "low": None,
            "high": None, "site_key": None, "permit_key": None, "severity": 2}  # fmt: skip
    return {**base, **kw}


KINDS = [
    {"name": "unit", "label_zh": "车", "label_en": "Units", "mobile": True, "shape_index": 0,
     "thresholds": [_threshold("speed", "above", limit=120.0)]},
    {"name": "gauge", "label_zh": "站", "label_en": "Gauges", "mobile": False, "shape_index": 2,
     "primary_field": "level",
     "thresholds": [
         _threshold("level", "above", site_key="warning_m"),
         _threshold("moist", "below", limit=12.0, site_key="drought"),
         _threshold("ph", "outside", low=6.0, high=9.0),
         _threshold("fault", "truthy"),
         _threshold("so2", "above", permit_key="so2"),
     ]},
]  # fmt: skip

CHECKS: list[tuple[list[Any], bool]] = [
    # above is strict: at the limit is not over it
    (["unit", {"speed": 120.0}, None, None], False),
    (["unit", {"speed": 120.1}, None, None], True),
    (["unit", {"speed": 119.9}, None, None], False),
    # a site threshold only: no site, no verdict; with one, strict above it
    (["gauge", {"level": 99.0}, None, None], False),
    (["gauge", {"level": 3.2}, {"warning_m": 3.2}, None], False),
    (["gauge", {"level": 3.21}, {"warning_m": 3.2}, None], True),
    # below, with the rule's own limit, then the site's replacing it
    (["gauge", {"moist": 12.0}, None, None], False),
    (["gauge", {"moist": 11.9}, None, None], True),
    (["gauge", {"moist": 11.9}, {"drought": 10.0}, None], False),
    (["gauge", {"moist": 9.9}, {"drought": 10.0}, None], True),
    # outside [6, 9]: the ends are inside
    (["gauge", {"ph": 6.0}, None, None], False),
    (["gauge", {"ph": 9.0}, None, None], False),
    (["gauge", {"ph": 5.99}, None, None], True),
    (["gauge", {"ph": 9.01}, None, None], True),
    # truthy: a fault string raises, an empty one does not
    (["gauge", {"fault": "lamp out"}, None, None], True),
    (["gauge", {"fault": ""}, None, None], False),
    # a permit limit only: without the permit nothing, with it strict above
    (["gauge", {"so2": 500.0}, None, None], False),
    (["gauge", {"so2": 35.0}, None, {"so2": 35.0}], False),
    (["gauge", {"so2": 35.5}, None, {"so2": 35.0}], True),
    # not a number, a boolean, an unknown kind: no flag
    (["gauge", {"ph": "acid"}, None, None], False),
    (["gauge", {"ph": True}, None, None], False),
    (["nosuch", {"ph": 1.0}, None, None], False),
]


@pytest.fixture(scope="module")
def answers() -> dict[str, Any]:
    node = shutil.which("node")
    assert node, "node is needed for the console's modules"
    cases = {"kinds": KINDS, "checks": [c[0] for c in CHECKS]}
    done = subprocess.run(
        [node, "--input-type=module", "-e", SCRIPT, KINDS_JS.as_uri(), json.dumps(cases)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


@pytest.mark.parametrize(("index", "expected"), [(i, c[1]) for i, c in enumerate(CHECKS)])
def test_thresholds_flag_as_the_rules_do(
    answers: dict[str, Any], index: int, expected: bool
) -> None:
    assert answers["out"][index] is expected, CHECKS[index][0]


def test_kinds_are_what_apps_says(answers: dict[str, Any]) -> None:
    assert answers["kinds"] == ["unit", "gauge"]
    assert answers["mobile"] is True
    assert answers["shape"] == 2 and answers["unknownShape"] == 1  # unknown: a circle
    assert answers["field"] == "level"
