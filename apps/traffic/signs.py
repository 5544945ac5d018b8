"""Variable message sign (情报板) messages: what a sign can show, and suggested wording.

A sign is ``rows`` lines of ``columns`` full-width cells. A Chinese character fills a cell;
an ASCII character is half-width and fills half of one, so a line holds ``2 * columns``
half-width units. The font of common sign controllers holds the GB 2312 level-1 characters
(一级汉字, 3755 characters, code rows 16-55), printable ASCII and a little full-width
punctuation; anything else cannot be lit and is refused, naming the characters.

Examples
--------
>>> sign = Sign(rows=2, columns=8)
>>> sign.layout("前方施工 减速慢行")
('前方施工', '减速慢行')
>>> sign.layout("前方施工 减速慢行 注意安全")
Traceback (most recent call last):
...
apps.traffic.signs.SignMessageError: message needs 3 lines, the sign has 2
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

__all__ = [
    "SIGN_PUNCTUATION",
    "Sign",
    "SignMessageError",
    "suggest_closure",
    "suggest_congestion",
    "unshowable",
]

#: Full-width punctuation signs are expected to show (GB 2312 rows 1 and 3).
SIGN_PUNCTUATION: Final = frozenset("，。、：；！？（）—《》“”％")
_LEVEL1_FIRST_BYTE: Final = range(0xB0, 0xD8)  # rows 16-55 of GB 2312


class SignMessageError(ValueError):
    """A message the sign cannot show: unknown characters, too long, too many lines."""


def _showable(char: str, extra: frozenset[str]) -> bool:
    if " " <= char <= "~" or char in extra:
        return True
    try:
        code = char.encode("gb2312")
    except UnicodeEncodeError:
        return False
    return len(code) == 2 and code[0] in _LEVEL1_FIRST_BYTE


def unshowable(text: str, extra: frozenset[str] = SIGN_PUNCTUATION) -> list[str]:
    """Characters of ``text`` outside GB 2312 level 1, printable ASCII and ``extra``, in order.

    >>> unshowable("潞城区 → 黎城")
    ['→']
    >>> unshowable("壶关犇")
    ['犇']
    """
    seen: dict[str, None] = {}
    for char in text:
        if char != "\n" and not _showable(char, extra):
            seen[char] = None
    return list(seen)


def _width(text: str) -> int:
    return sum(1 if " " <= c <= "~" else 2 for c in text)


@dataclass(frozen=True)
class Sign:
    """A sign's matrix: ``rows`` lines of ``columns`` full-width cells."""

    rows: int
    columns: int
    extra_chars: frozenset[str] = SIGN_PUNCTUATION

    def __post_init__(self) -> None:
        if self.rows < 1 or self.columns < 1:
            raise SignMessageError(
                f"a sign needs at least one row and one column, got {self.rows}×{self.columns}"
            )

    def validate(self, lines: list[str] | tuple[str, ...]) -> tuple[str, ...]:
        """Check explicit lines; return them unchanged or raise naming what is wrong."""
        bad = unshowable("".join(lines), self.extra_chars)
        if bad:
            raise SignMessageError(
                "the sign cannot show the character(s) "
                + " ".join(f"{c!r} (U+{ord(c):04X})" for c in bad)
            )
        if len(lines) > self.rows:
            raise SignMessageError(f"message needs {len(lines)} lines, the sign has {self.rows}")
        for i, line in enumerate(lines, 1):
            if _width(line) > 2 * self.columns:
                raise SignMessageError(
                    f"line {i} {line!r} is {_width(line) / 2:g} cells wide, "
                    f"the sign has {self.columns}"
                )
        return tuple(lines)

    def layout(self, text: str) -> tuple[str, ...]:
        """Break ``text`` into the sign's lines and validate them.

        Explicit newlines are kept; words (spaces) are kept whole where they fit; a run of
        Chinese characters, which has no spaces, is broken at any character.
        """
        bad = unshowable(text, self.extra_chars)
        if bad:
            self.validate([text])  # raises, naming the characters
        cap = 2 * self.columns
        lines: list[str] = []
        for para in text.split("\n"):
            line = ""
            for word in para.split(" "):
                candidate = f"{line} {word}" if line else word
                if _width(candidate) <= cap:
                    line = candidate
                    continue
                if line:
                    lines.append(line)
                line = ""
                for char in word:
                    if _width(line + char) > cap:
                        lines.append(line)
                        line = ""
                    line += char
            lines.append(line)
        return self.validate(lines)


Lang = Literal["zh", "en"]


def _first_fit(sign: Sign, texts: list[str]) -> tuple[str, ...]:
    reasons = []
    for text in texts:
        try:
            return sign.layout(text)
        except SignMessageError as err:
            reasons.append(f"{text!r}: {err}")
    raise SignMessageError("no suggested message fits the sign: " + "; ".join(reasons))


def suggest_closure(
    sign: Sign,
    road: str,
    between: tuple[str, str] | None = None,
    *,
    detour: str | None = None,
    lang: Lang = "zh",
) -> tuple[str, ...]:
    """A closed-road message, the most detailed wording the sign can show.

    >>> suggest_closure(Sign(2, 8), "英雄南路", ("太行街", "府后街"))
    ('英雄南路封闭', '请绕行')
    """
    if lang == "zh":
        texts = []
        if between:
            texts.append(
                f"{road}{between[0]}至{between[1]}段封闭\n请经{detour}绕行" if detour else ""
            )
            texts.append(f"{road}{between[0]}至{between[1]}段封闭\n请绕行")
        if detour:
            texts.append(f"{road}封闭\n请经{detour}绕行")
        texts += [f"{road}封闭\n请绕行", "前方道路封闭\n请绕行", "前方封闭"]
    else:
        texts = []
        if between:
            texts.append(
                f"{road} CLOSED {between[0]}-{between[1]}\nDETOUR VIA {detour}" if detour else ""
            )
            texts.append(f"{road} CLOSED {between[0]}-{between[1]}\nUSE DETOUR")
        if detour:
            texts.append(f"{road} CLOSED\nDETOUR VIA {detour}")
        texts += [f"{road} CLOSED\nUSE DETOUR", "ROAD CLOSED AHEAD\nUSE DETOUR", "ROAD CLOSED"]
    return _first_fit(sign, [t for t in texts if t])


def suggest_congestion(
    sign: Sign,
    road: str,
    *,
    length_km: float,
    delay_min: float,
    lang: Lang = "zh",
) -> tuple[str, ...]:
    """A congestion message with queue length and expected delay, shortened to fit.

    >>> suggest_congestion(Sign(3, 10), "太行东街", length_km=1.24, delay_min=7.6)
    ('太行东街拥堵1.2公里', '预计延误8分钟', '请减速慢行')
    """
    if length_km < 0 or delay_min < 0:
        raise SignMessageError("queue length and delay must not be negative")
    km = f"{length_km:.1f}"
    minutes = max(1, round(delay_min))
    if lang == "zh":
        texts = [
            f"{road}拥堵{km}公里\n预计延误{minutes}分钟\n请减速慢行",
            f"{road}拥堵{km}公里\n预计延误{minutes}分钟",
            f"{road}拥堵\n延误{minutes}分钟",
            f"{road}拥堵",
            "前方拥堵\n减速慢行",
            "前方拥堵",
        ]
    else:
        texts = [
            f"{road} CONGESTED {km} KM\nDELAY {minutes} MIN\nDRIVE SLOWLY",
            f"{road} CONGESTED {km} KM\nDELAY {minutes} MIN",
            f"{road} JAM\nDELAY {minutes} MIN",
            "CONGESTION AHEAD\nSLOW DOWN",
            "CONGESTION AHEAD",
        ]
    return _first_fit(sign, texts)
