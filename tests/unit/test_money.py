"""Amounts by ISO 4217 exponent: what finance reads must be the payment's amount."""

from __future__ import annotations

import pytest

from worker.money import EXPONENTS, amount, exponent, money


@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [
        (2830479, "EUR", "28,304.79 EUR"),
        (5, "USD", "0.05 USD"),
        (150000, "JPY", "150,000 JPY"),
        (1500, "KWD", "1.500 KWD"),
        (12345, "CLF", "1.2345 CLF"),
        (-250, "GBP", "-2.50 GBP"),
        (1234567, "XYZ", "1,234,567 minor units XYZ"),
    ],
)
def test_minor_units_by_the_currency_exponent(minor: int, currency: str, text: str) -> None:
    assert money(minor, currency) == text


def test_unknown_codes_are_said_to_be_unknown_not_guessed() -> None:
    assert exponent("XYZ") is None
    assert exponent("eur") == 2
    assert amount(100, "ABC").endswith("minor units")


def test_the_table_holds_the_common_currencies_with_their_exponents() -> None:
    expected = {"EUR": 2, "USD": 2, "SEK": 2, "NOK": 2, "DKK": 2, "GBP": 2, "JPY": 0}
    expected |= {"KRW": 0, "ISK": 0, "BHD": 3, "KWD": 3, "OMR": 3, "TND": 3, "CLF": 4}
    assert {code: EXPONENTS[code] for code in expected} == expected
    assert all(len(code) == 3 and code.isupper() for code in EXPONENTS)
