"""Sign messages: the GB 2312 level-1 boundary, widths at the limit, fallbacks."""

from __future__ import annotations

import pytest

from apps.traffic.signs import Sign, SignMessageError, suggest_closure, suggest_congestion


def test_level1_boundary() -> None:
    sign = Sign(1, 4)
    # 啊 (B0A1) opens level 1 and 座 (D7F9) closes it; 亍 (D8A1) opens level 2.
    assert sign.layout("啊座") == ("啊座",)
    with pytest.raises(SignMessageError, match="'亍'"):
        sign.layout("亍")
    # GB 2312 symbols outside the punctuation list (row 1 ※) and non-GB characters.
    with pytest.raises(SignMessageError, match=r"'※' \(U\+203B\).*'😀'"):
        sign.validate(["※😀"])


def test_width_at_and_above_the_limit() -> None:
    sign = Sign(2, 4)  # 4 full-width cells = 8 half-width units per line
    assert sign.validate(["长治路口", "ABCDEFGH"]) == ("长治路口", "ABCDEFGH")
    with pytest.raises(SignMessageError, match=r"line 2 .* 4.5 cells wide"):
        sign.validate(["长治", "ABCDEFGHI"])
    with pytest.raises(SignMessageError, match="3 lines"):
        sign.layout("长治路口太行街道英雄")


def test_layout_keeps_words_whole() -> None:
    assert Sign(2, 6).layout("ROAD CLOSED AHEAD") == ("ROAD CLOSED", "AHEAD")
    assert Sign(2, 6).layout("前方\n封闭") == ("前方", "封闭")


def test_suggestions_fall_back_to_what_fits() -> None:
    big = Sign(3, 16)
    assert suggest_closure(big, "太行西街", ("英雄路", "府后街"), detour="城西路") == (
        "太行西街英雄路至府后街段封闭",
        "请经城西路绕行",
    )
    assert suggest_closure(Sign(1, 4), "太行西街") == ("前方封闭",)
    assert suggest_closure(Sign(2, 12), "Taihang W St", lang="en") == (
        "Taihang W St CLOSED",
        "USE DETOUR",
    )
    assert suggest_congestion(Sign(2, 8), "太行东街", length_km=2.0, delay_min=0.2) == (
        "太行东街拥堵",
        "延误1分钟",
    )
    # A road name the font lacks is left out rather than shown broken.
    assert suggest_congestion(Sign(2, 8), "犇路", length_km=1, delay_min=3) == (
        "前方拥堵",
        "减速慢行",
    )
    with pytest.raises(SignMessageError, match="no suggested message fits"):
        suggest_congestion(Sign(1, 1), "x", length_km=1, delay_min=1, lang="en")
