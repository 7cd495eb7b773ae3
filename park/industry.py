"""GB/T 4754-2017 industry codes: a section letter and a two-digit division (e.g. C39).

Park offices write an enterprise's industry as the division (``C39``), the bare division number
(``39``), or a class below it (``C3911``, ``3911``); every form becomes the division. A code whose
section letter does not own its division (``A39``) is an error, not a guess.

References
----------
1. GB/T 4754-2017 国民经济行业分类 (Industrial classification for national economic activities),
   sections A-T and their divisions 01-97.

Examples
--------
>>> [normalize_industry(code) for code in ("C39", "39", "c3911", "3911", " D44 ")]
['C39', 'C39', 'C39', 'C39', 'D44']
>>> normalize_industry("A39")
Traceback (most recent call last):
...
ValueError: 'A39': division 39 belongs to section C (GB/T 4754-2017), not A
"""

from __future__ import annotations

import re

# source: GB/T 4754-2017, the divisions of each section (first, last).
SECTION_DIVISIONS: dict[str, tuple[int, int]] = {
    "A": (1, 5),  # 农、林、牧、渔业
    "B": (6, 12),  # 采矿业
    "C": (13, 43),  # 制造业
    "D": (44, 46),  # 电力、热力、燃气及水生产和供应业
    "E": (47, 50),  # 建筑业
    "F": (51, 52),  # 批发和零售业
    "G": (53, 60),  # 交通运输、仓储和邮政业
    "H": (61, 62),  # 住宿和餐饮业
    "I": (63, 65),  # 信息传输、软件和信息技术服务业
    "J": (66, 69),  # 金融业
    "K": (70, 70),  # 房地产业
    "L": (71, 72),  # 租赁和商务服务业
    "M": (73, 75),  # 科学研究和技术服务业
    "N": (76, 79),  # 水利、环境和公共设施管理业
    "O": (80, 82),  # 居民服务、修理和其他服务业
    "P": (83, 83),  # 教育
    "Q": (84, 85),  # 卫生和社会工作
    "R": (86, 90),  # 文化、体育和娱乐业
    "S": (91, 96),  # 公共管理、社会保障和社会组织
    "T": (97, 97),  # 国际组织
}
_CODE = re.compile(r"^([A-T])?(\d{2})(\d{1,2})?$")


def section_of(division: int) -> str | None:
    """The section letter that owns ``division``, or None if GB/T 4754-2017 has no such division."""
    return next((s for s, (first, last) in SECTION_DIVISIONS.items() if first <= division <= last), None)


def normalize_industry(code: str) -> str:
    """The GB/T 4754-2017 division (``C39``) of ``code``; raise ValueError naming what is wrong."""
    text = code.strip().upper()
    match = _CODE.match(text)
    if match is None:
        raise ValueError(f"{code!r} is not a GB/T 4754-2017 industry code such as C39, 39 or C3911")
    letter, digits = match.group(1), int(match.group(2))
    section = section_of(digits)
    if section is None:
        raise ValueError(f"{code!r}: GB/T 4754-2017 has no division {digits:02d}")
    if letter is not None and letter != section:
        raise ValueError(f"{code!r}: division {digits:02d} belongs to section {section} (GB/T 4754-2017), not {letter}")
    return f"{section}{digits:02d}"
