"""The comparable form of an address: widths, punctuation, Chinese numerals and unit words made uniform."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from gridmap.errors import InvalidInput

_CN_DIGITS = {
    "零": 0,
    "〇": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
_CN_UNITS = {"十": 10, "百": 100, "千": 1000}
_CN_NUMERAL = "零〇一二两三四五六七八九十百千"
# Chinese numerals are converted only directly before one of these unit words, so names keep theirs
# ("一品花园", "三里屯", "七里香苑" stay as written).
_NUMERAL_BEFORE_UNIT = re.compile(rf"([{_CN_NUMERAL}]+)(?=号楼|号院|号|栋|幢|座|单元|室|层|楼|支弄|弄|米)")
_BUILDING_WORDS = re.compile(r"(\d+|[A-Z])(?:号楼|号栋|#楼|#|幢|座|栋)")
_METRES = re.compile(r"(\d+)(?:M|公尺)(?![A-Z])")
# "12号至16号", "12至16号", "12号-16号" are one range, written "12-16号"; "12号之3" is the sub-number "12-3号".
_RANGE = re.compile(r"(\d+)号?(?:至|到|-)(\d+)号")
_SUB_NUMBER = re.compile(r"(\d+)号(?:之|附)(\d+)号?")
# What may follow a place-name prefix when the prefix is really the start of a longer name (天津大道, 南开大学).
NAME_CONTINUATIONS = ("大道", "大街", "路", "街", "道", "站", "港", "湾", "大学", "医院", "桥", "中学", "小学")
# Province, city and district at the start; stripped only as a chain of two or more (or a province alone),
# because one "XX市"/"XX区" alone is too often part of a name ("华润城市花园", "华苑小区").
ADMIN_CHAIN = re.compile(
    r"^(?P<province>[\u4e00-\u9fff]{2,7}?(?:省|自治区|特别行政区))?"
    r"(?P<city>[\u4e00-\u9fff]{2,6}?(?:市(?!场)|自治州|地区|盟))?"
    r"(?P<district>[\u4e00-\u9fff]{1,6}?(?<![社小园校景片厂营])(?:区|县|旗))?"
)


def _noise_table() -> dict[int, str | None]:
    # Punctuation, symbols and spaces go; dashes become "-" (they separate 3-2-501); "#" stays (3#楼).
    table: dict[int, str | None] = {}
    ranges = [(0x20, 0x7F), (0xA0, 0xC0), (0x2000, 0x2070), (0x3000, 0x3040), (0xFE30, 0xFE50), (0xFF00, 0xFF66)]
    for start, stop in ranges:
        for code in range(start, stop):
            char = chr(code)
            category = unicodedata.category(char)
            if char in "-#" or category[0] not in "PZS":
                continue
            table[code] = "-" if category == "Pd" or char == "~" else None
    for code in (0x09, 0x0A, 0x0D):
        table[code] = None
    return table


_NOISE = _noise_table()


def chinese_numeral_to_int(text: str) -> int:
    """Read a Chinese numeral: 十二 → 12, 二十三 → 23, 一百零五 → 105, 五零一 → 501 (digit by digit)."""
    if not text or any(c not in _CN_DIGITS and c not in _CN_UNITS for c in text):
        raise InvalidInput(f"{text!r} is not a Chinese numeral")
    if not any(c in _CN_UNITS for c in text):
        return int("".join(str(_CN_DIGITS[c]) for c in text))
    total, current = 0, 0
    for char in text:
        if char in _CN_DIGITS:
            current = _CN_DIGITS[char]
        else:
            total += (current or 1) * _CN_UNITS[char]
            current = 0
    return total + current


def clean(text: str) -> str:
    """Return an address with widths, punctuation, numerals and unit words made uniform (no prefix removed).

    NFKC (full-width letters, digits and punctuation to ASCII; Chinese kept); letters upper-cased; spaces and
    punctuation removed, dashes kept as "-"; Chinese numerals converted only where they directly precede a unit
    word (三栋 → 3栋, 十二号 → 12号, 五零一室 → 501室, 一百五十米 → 150米, while 一品花园 keeps its 一);
    幢/座/号楼/#楼 after a number become 栋; 150m → 150米; 12号至16号 → 12-16号; 12号之3 → 12-3号.
    """
    value = unicodedata.normalize("NFKC", str(text)).upper().translate(_NOISE)
    value = re.sub(r"-{2,}", "-", value).strip("-")
    value = _NUMERAL_BEFORE_UNIT.sub(lambda m: str(chinese_numeral_to_int(m.group(1))), value)
    value = _METRES.sub(r"\1米", value)
    value = _SUB_NUMBER.sub(r"\1-\2号", value)
    value = _RANGE.sub(r"\1-\2号", value)
    return _BUILDING_WORDS.sub(r"\1栋", value)


def strip_admin_chain(value: str) -> str:
    """Remove a leading chain of generic province/city/district names ("广东省惠州市惠城区"), never everything."""
    chain = ADMIN_CHAIN.match(value)
    levels = [name for name in ("province", "city", "district") if chain.group(name)]
    if (len(levels) >= 2 or levels == ["province"]) and chain.end() < len(value):
        return value[chain.end() :]
    return value


def normalize_address(text: str, *, strip_prefixes: Iterable[str] = (), strip_admin_names: bool = True) -> str:
    """Return the comparable form of an address (see `clean`), with leading prefixes removed.

    `strip_prefixes` are removed from the start (longest first, repeatedly, unless what follows shows the prefix
    is part of a name, as in 天津大道); with `strip_admin_names`, a leading chain of generic province/city/district
    names ("广东省惠州市惠城区"; a province alone, but one "XX市" or "XX区" alone is kept as it may be a name, like
    华润城市花园). Nothing is stripped that would leave the address empty. The matcher reads prefixes through the
    jurisdiction instead (`gridmap.geocode.jurisdiction`), which also remembers which district was named.
    """
    value = clean(text)
    prefixes = sorted({p for p in strip_prefixes if p}, key=len, reverse=True)
    while True:
        before = value
        prefix = next((p for p in prefixes if value.startswith(p)), "")
        rest = value[len(prefix) :]
        if prefix and rest and not rest.startswith(NAME_CONTINUATIONS):
            value = rest
        if strip_admin_names:
            value = strip_admin_chain(value)
        if value == before:
            return value


def normalize_building(value: object) -> str:
    """Return the comparable form of a building number: "3号楼", "三栋", "3幢", "03", 3 → "3"."""
    text = clean(str(value))
    text = re.sub(r"(?:栋|号|楼)+$", "", text)
    if text and all(c in _CN_DIGITS or c in _CN_UNITS for c in text):
        text = str(chinese_numeral_to_int(text))
    return text.lstrip("0") or text


def normalize_number(value: object) -> str:
    """Return the comparable form of a door number: 12, "12号", "十二号" → "12"; "12-3号" → "12-3"; "1999弄"."""
    text = clean(str(value))
    text = re.sub(r"号$", "", text)
    lane = text.endswith("弄")
    text = text.removesuffix("弄")
    number = "-".join(part.lstrip("0") or part for part in text.split("-"))
    return number + ("弄" if lane else "")


def require_text(text: object) -> str:
    """Return the cleaned form of an address, refusing what is not text or has nothing in it."""
    if not isinstance(text, str):
        raise InvalidInput(f"address must be text, not {type(text).__name__}")
    if not text.strip():
        raise InvalidInput("address is empty")
    cleaned = clean(text)
    if not cleaned:
        raise InvalidInput(f"address {text!r} has nothing but spaces and punctuation")
    return cleaned
