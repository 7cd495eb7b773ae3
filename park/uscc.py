"""The unified social credit code (统一社会信用代码) of an organisation and its check digit.

Source: GB 32100-2015 《法人和其他组织统一社会信用代码编码规则》 (Coding rule of the unified social
credit identifier for legal entities and other organizations), clauses 4 and 5 and appendix B. The code
has 18 characters from a set of 31 (the digits and the capital letters without I, O, Z, S and V):

- 1: registration authority (登记管理部门代码), e.g. 9 for the market regulator (工商);
- 2: kind of organisation (机构类别代码), e.g. 1 for a company;
- 3–8: administrative division of the registering authority (GB/T 2260), six digits;
- 9–17: the organisation code (主体标识码, GB 11714);
- 18: the check digit: each character's value (its index in the set) times the weight ``3**(i-1) mod 31``
  of its position i = 1..17, summed; the check character's value is ``31 - (sum mod 31)``, with 31
  written as 0.

Only the structure and the 18th character are checked here: the registration authority and kind
codes are not kept closed (the standard lets the authorities add codes), and the organisation code's
own GB 11714 check digit is not the registry's to judge.
"""

from __future__ import annotations

import re

CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # GB 32100-2015 table 2: 31 characters, no I, O, Z, S, V
WEIGHTS = tuple(pow(3, i, 31) for i in range(17))  # 1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28
_SHAPE = re.compile(rf"^[1-9A-Y][1-9A-Z][0-9]{{6}}[{CHARSET}]{{9}}[{CHARSET}]$")


def check_character(first17: str) -> str:
    """The check character (position 18) of the code whose first 17 characters are ``first17``."""
    if len(first17) != 17 or any(c not in CHARSET for c in first17):
        raise ValueError(f"{first17!r}: the first 17 characters of a code are 17 of {CHARSET}")
    total = sum(CHARSET.index(c) * w for c, w in zip(first17, WEIGHTS, strict=True))
    return CHARSET[(31 - total % 31) % 31]


def validate_uscc(code: str) -> str:
    """``code`` in capitals if it is a well-formed code with the right check digit; ValueError saying
    what is wrong otherwise."""
    value = code.strip().upper()
    if len(value) != 18:
        raise ValueError(f"unified social credit code {code!r} has {len(value)} characters, not 18 (GB 32100-2015)")
    if not _SHAPE.match(value):
        raise ValueError(
            f"unified social credit code {code!r} is not shaped as GB 32100-2015 says: authority and kind,"
            f" six digits of the division, nine characters of {CHARSET}, a check character"
        )
    expected = check_character(value[:17])
    if value[17] != expected:
        raise ValueError(
            f"unified social credit code {code!r}: check character {value[17]!r} is wrong (GB 32100-2015 gives"
            f" {expected!r}); a character was mistyped"
        )
    return value
