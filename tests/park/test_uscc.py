"""The unified social credit code's check digit (GB 32100-2015), in the registry's validation."""

from __future__ import annotations

import pytest

from park.registry import RegistryError, load_registry
from park.uscc import CHARSET, WEIGHTS, check_character, validate_uscc
from tests.park.test_registry import write

# Codes published on the national enterprise credit information publicity system (国家企业信用信息公示系统)
# and on the companies' own sites: Huawei Technologies, Tencent (Shenzhen), Alibaba (China).
PUBLISHED = ("914403001922038216", "9144030071526726XG", "91330100799655058B")


def by_hand(first17: str) -> str:
    """GB 32100-2015 appendix B spelled out once more, step by step, to compare with the module."""
    weights = [1]
    for _ in range(16):
        weights.append(weights[-1] * 3 % 31)
    total = 0
    for char, weight in zip(first17, weights, strict=True):
        total += CHARSET.index(char) * weight
    value = 31 - total % 31
    return "0" if value == 31 else CHARSET[value]


def test_weights_are_the_standards():
    """Table B.1 of the standard lists these weights for positions 1 to 17."""
    assert WEIGHTS == (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
    assert len(CHARSET) == 31 and not set("IOZSV") & set(CHARSET)


@pytest.mark.parametrize("code", PUBLISHED)
def test_published_codes_are_valid(code):
    assert check_character(code[:17]) == code[17] == by_hand(code[:17])
    assert validate_uscc(code.lower()) == code


def test_derived_codes_of_the_park_are_valid():
    """Codes of the structure 91 (market regulator, company) + Hefei high-tech zone 340100 + nine
    characters, their check character derived by hand, pass; every check value 0..30 occurs."""
    seen = set()
    for n in range(400):
        body = f"91340100MA2{n:04d}"[:15] + CHARSET[n % 31] + CHARSET[(n * 7) % 31]
        code = body + by_hand(body)
        assert validate_uscc(code) == code
        seen.add(code[17])
    assert seen == set(CHARSET)


@pytest.mark.parametrize("code", PUBLISHED)
def test_any_one_character_changed_is_caught(code):
    """The weights are powers of 3 modulo the prime 31, all non-zero: every single substitution, at any
    position and to any other character of the set, changes the check value."""
    for position in range(18):
        for char in CHARSET:
            if char == code[position]:
                continue
            changed = code[:position] + char + code[position + 1 :]
            with pytest.raises(ValueError):
                validate_uscc(changed)


@pytest.mark.parametrize(
    ("code", "says"),
    [
        ("91440300192203821", "17 characters, not 18"),
        ("9144030019220382166", "19 characters"),
        ("91440300192203821I", "not shaped"),  # I is not in the set
        ("9A44030019220382I6", "not shaped"),  # a letter in the division
        ("914403001922038217", "check character '7' is wrong"),
    ],
)
def test_bad_codes_say_why(code, says):
    with pytest.raises(ValueError, match=says):
        validate_uscc(code)


def test_registry_refuses_a_mistyped_code_naming_the_entry(tmp_path):
    ok = write(tmp_path, lambda d: d["enterprises"][0].update(credit_code=PUBLISHED[0]))
    assert load_registry(ok).enterprises[0].credit_code == PUBLISHED[0]
    bad = write(tmp_path, lambda d: d["enterprises"][1].update(credit_code="914403001922038261"))
    with pytest.raises(RegistryError) as err:
        load_registry(bad)
    assert "enterprises[1] (id 'E02'): credit_code: unified social credit code '914403001922038261'" in str(err.value)
