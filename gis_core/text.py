"""Text every output can carry: the characters XML 1.0 allows.

XML 1.0 (section 2.2, ``Char``) allows tab, line feed, carriage return, U+0020..U+D7FF,
U+E000..U+FFFD and U+10000..U+10FFFF. Everything else — C0 controls and NUL, lone UTF-16
surrogates (which JSON's ``\\ud800`` escapes can carry and UTF-8 cannot encode), and the
noncharacters U+FFFE and U+FFFF — breaks a CAP document, an export, or the encoding of a
response. Text is checked where it enters the platform, and stripped where it leaves for XML.
"""

from __future__ import annotations

import re

from gis_core.errors import InvalidInput

NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def first_forbidden(text: str) -> str | None:
    """The first character of ``text`` XML 1.0 does not allow, or None."""
    found = NOT_XML_CHAR.search(text)
    return found.group() if found else None


def strip_forbidden(text: str) -> str:
    """``text`` without the characters XML 1.0 does not allow."""
    return NOT_XML_CHAR.sub("", text)


def check_text(name: str, text: str | None) -> str | None:
    """``text`` unchanged, or :class:`InvalidInput` naming the field and the character.

    >>> check_text("description", "火警 东街")
    '火警 东街'
    """
    if text is None:
        return None
    bad = first_forbidden(text)
    if bad is not None:
        raise InvalidInput(
            f"{name}: contains U+{ord(bad):04X}, a character XML 1.0 does not allow "
            "(control characters, lone surrogates, U+FFFE and U+FFFF are refused)"
        )
    return text
