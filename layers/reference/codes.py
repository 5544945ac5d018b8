"""Check characters and layouts of Chinese registry codes used by the synthesized reference data.

* 统一社会信用代码 (unified social credit code), GB 32100-2015: 18 characters.
* 组织机构代码 (organization code), GB 11714-1997: 8 body characters and a check character;
  it forms positions 9–17 of a credit code.
* 宗地代码 (cadastral parcel code), GB/T 26424-2010: 19 characters.
* 采矿/探矿许可证号 (mining/exploration licence number): the platform's 23-character layout.

Examples
--------
>>> credit_code_check_char("91350100M000100Y4")
'3'
>>> is_valid_credit_code("91350100M000100Y43")
True
>>> org_code_check_char("M000100Y")
'4'
"""

from __future__ import annotations

import re
from typing import Final

__all__ = [
    "CREDIT_CHARSET",
    "credit_code",
    "credit_code_check_char",
    "is_valid_credit_code",
    "is_valid_org_code",
    "is_valid_parcel_code",
    "licence_number",
    "org_code_check_char",
    "parcel_code",
]

#: GB 32100-2015 character set: digits and capitals without I, O, Z, S, V (31 symbols).
CREDIT_CHARSET: Final = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_CREDIT_VALUE: Final = {c: i for i, c in enumerate(CREDIT_CHARSET)}
#: Position weights 3**i mod 31 for the 17 leading characters.
_CREDIT_WEIGHTS: Final = tuple(pow(3, i, 31) for i in range(17))
#: GB 11714-1997 weights of the 8 body characters.
_ORG_WEIGHTS: Final = (3, 7, 9, 10, 5, 8, 4, 2)
_PARCEL_RE: Final = re.compile(r"^\d{6}\d{3}\d{3}[GJZ][ABSXCDEFLNHGWY]\d{5}$")


def _org_value(c: str) -> int:
    if c.isdigit():
        return int(c)
    if "A" <= c <= "Z":
        return ord(c) - ord("A") + 10
    raise ValueError(f"invalid organization code character {c!r}")


def org_code_check_char(body: str) -> str:
    """GB 11714-1997 check character of an 8-character organization code body.

    Parameters
    ----------
    body
        Eight digits or capital letters.

    Returns
    -------
    str
        ``"0"``–``"9"`` or ``"X"``.
    """
    if len(body) != 8:
        raise ValueError("organization code body must have 8 characters")
    s = sum(_org_value(c) * w for c, w in zip(body, _ORG_WEIGHTS, strict=True))
    c9 = 11 - s % 11
    return "X" if c9 == 10 else "0" if c9 == 11 else str(c9)


def is_valid_org_code(code: str) -> bool:
    """True if ``code`` is 9 characters whose last is the GB 11714 check character."""
    try:
        return len(code) == 9 and org_code_check_char(code[:8]) == code[8]
    except ValueError:
        return False


def credit_code_check_char(first17: str) -> str:
    """GB 32100-2015 check character of the first 17 characters of a credit code.

    Parameters
    ----------
    first17
        Seventeen characters of :data:`CREDIT_CHARSET`.
    """
    if len(first17) != 17:
        raise ValueError("need the first 17 characters")
    try:
        s = sum(_CREDIT_VALUE[c] * w for c, w in zip(first17, _CREDIT_WEIGHTS, strict=True))
    except KeyError as exc:
        raise ValueError(f"invalid credit code character {exc.args[0]!r}") from None
    return CREDIT_CHARSET[(31 - s % 31) % 31]


def is_valid_credit_code(code: str) -> bool:
    """True if ``code`` is a well-formed credit code with both check characters right.

    Checks the length, the character set, the 6-digit administrative code, the embedded
    organization code (GB 11714) and the final check character (GB 32100).
    """
    if len(code) != 18 or any(c not in _CREDIT_VALUE for c in code):
        return False
    if not code[2:8].isdigit() or not is_valid_org_code(code[8:17]):
        return False
    return credit_code_check_char(code[:17]) == code[17]


def credit_code(admin_code: str, org_body: str, *, authority: str = "9", kind: str = "1") -> str:
    """Build a credit code: authority, type, admin code, organization code, check character.

    Parameters
    ----------
    admin_code
        Six-digit administrative division code of the registering authority.
    org_body
        Eight characters of :data:`CREDIT_CHARSET`; its GB 11714 check character is appended.
    authority, kind
        Registration authority (``"9"`` market regulation) and entity type (``"1"`` enterprise).

    Examples
    --------
    >>> credit_code("350100", "M000100Y")
    '91350100M000100Y43'
    """
    if len(admin_code) != 6 or not admin_code.isdigit():
        raise ValueError("admin code must be 6 digits")
    org = org_body + org_code_check_char(org_body)
    head = authority + kind + admin_code + org
    return head + credit_code_check_char(head)


def parcel_code(district: str, township: int, subzone: int, feature: str, seq: int) -> str:
    """宗地代码 (GB/T 26424): district, 地籍区, 地籍子区, 宗地特征码, 宗地顺序号.

    Parameters
    ----------
    district
        Six-digit county-level division code.
    township, subzone
        Cadastral district (usually the township, 001–399) and subzone (the village), 1–999.
    feature
        Two characters: ownership ``G`` state / ``J`` collective / ``Z`` disputed, then the
        parcel kind, e.g. ``B`` construction land use right, ``C`` homestead, ``A`` collective
        ownership parcel.
    seq
        Parcel sequence number in the subzone, 1–99999.

    Examples
    --------
    >>> parcel_code("140403", 1, 12, "GB", 345)
    '140403001012GB00345'
    """
    code = f"{district}{township:03d}{subzone:03d}{feature}{seq:05d}"
    if not _PARCEL_RE.match(code):
        raise ValueError(f"malformed parcel code {code!r}")
    return code


def is_valid_parcel_code(code: str) -> bool:
    """True if ``code`` has the 19-character GB/T 26424 layout."""
    return bool(_PARCEL_RE.match(code))


def licence_number(
    kind: str, admin_code: str, year: int, month: int, mineral: int, seq: int
) -> str:
    """Mining (``C``) or exploration (``T``) licence number, 23 characters.

    Layout: kind letter, 6-digit issuing area code, year, month, 2-digit mineral group,
    8-digit sequence, e.g. ``C1404032010011100056789``.
    """
    if kind not in ("C", "T"):
        raise ValueError("kind must be 'C' (mining) or 'T' (exploration)")
    return f"{kind}{admin_code}{year:04d}{month:02d}{mineral:02d}{seq:08d}"
