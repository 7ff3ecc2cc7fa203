"""Money: minor units as amounts people read, by each currency's ISO 4217 exponent.

The report holds amounts in minor units (cents, yen, fils); a page that showed
2830479 EUR, or 1500 JPY as 15.00, would mislead finance. The table is ISO 4217's
list of active codes; a code outside it is shown in minor units and said to be so,
never guessed at two decimals.
"""

from __future__ import annotations

#: Codes whose minor unit is not a hundredth.
_OTHER = {
    0: "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF",
    3: "BHD IQD JOD KWD LYD OMR TND",
    4: "CLF UYW",
}
_HUNDREDTHS = (
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN "
    "BWP BYN BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUC CUP CVE CZK DKK DOP DZD EGP ERN "
    "ETB EUR FJD FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HRK HTG HUF IDR ILS INR IRR JMD "
    "KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR "
    "MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB "
    "SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY "
    "TTD TWD TZS UAH USD USN UYU UZS VED VES WST XCD XCG YER ZAR ZMW ZWG ZWL"
)
EXPONENTS: dict[str, int] = {
    code: digits for digits, codes in [(2, _HUNDREDTHS), *_OTHER.items()] for code in codes.split()
}


def exponent(currency: str) -> int | None:
    """The currency's ISO 4217 exponent, or None for a code not in the table."""
    return EXPONENTS.get(currency.strip().upper())


def amount(minor: int, currency: str) -> str:
    """`1,234.56` for 123456 EUR, `1,500` for 1500 JPY, `1.500` for 1500 KWD; an unknown
    code keeps its minor units, marked: `1,500 minor units`."""
    digits = exponent(currency)
    sign = "-" if minor < 0 else ""
    if digits is None:
        return f"{sign}{abs(minor):,} minor units"
    if digits == 0:
        return f"{sign}{abs(minor):,}"
    whole, part = divmod(abs(minor), 10**digits)
    return f"{sign}{whole:,}.{part:0{digits}d}"


def money(minor: int, currency: str) -> str:
    """An amount with its currency: `1,234.56 EUR`; an unknown code `1,500 minor units XYZ`."""
    return f"{amount(minor, currency)} {currency}"
