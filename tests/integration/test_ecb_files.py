"""The ECB connector on real ECB files and on hostile or broken XML."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from defusedxml.ElementTree import fromstring

from retreasure.connectors.base import SourceError
from retreasure.connectors.ecb import EcbSource
from retreasure.settings import Settings

FIXTURE = Path(__file__).parents[1] / "fixtures" / "ecb" / "eurofxref-hist-90d_2017-03-03.xml"
BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<gesmes:Envelope xmlns:gesmes="http://www.gesmes.org/xml/2002-08-01"
  xmlns="http://www.ecb.int/vocabulary/2002-08-01/eurofxref"><Cube><Cube time="2024-06-28">
<Cube currency="USD" rate="&lol9;"/></Cube></Cube></gesmes:Envelope>
"""
EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE e [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<Envelope><Cube><Cube time="2024-06-28"><Cube currency="USD" rate="&secret;"/></Cube></Cube></Envelope>
"""


@pytest.fixture
def ecb(tmp_path: Path) -> EcbSource:
    return EcbSource(Settings(_env_file=None, landing_dir=tmp_path))  # type: ignore[call-arg]


def test_real_90_day_history_gives_64_business_days(ecb: EcbSource) -> None:
    records = list(ecb.read(ecb.entity("fx_rates"), FIXTURE))
    assert len(records) == 64 and all(r.error is None for r in records)
    days = [date.fromisoformat(r.key) for r in records]  # type: ignore[arg-type]
    assert days == sorted(set(days), reverse=True)  # newest first, no repeats
    assert (days[0], days[-1]) == (date(2017, 3, 3), date(2016, 12, 5))
    assert all(d.weekday() < 5 for d in days) and date(2016, 12, 26) not in days  # a TARGET holiday
    assert all(r.partition_date == d for r, d in zip(records, days, strict=True))
    newest = {c.get("currency"): Decimal(c.get("rate")) for c in fromstring(records[0].payload)}
    assert newest["USD"] == Decimal("1.0565") and newest["GBP"] == Decimal("0.86355") and len(newest) == 31
    assert records[0].payload.startswith('<Cube time="2017-03-03"><Cube currency="USD" rate="1.0565"/>')


def test_a_cut_history_lands_every_whole_day_before_the_cut(ecb: EcbSource, tmp_path: Path) -> None:
    text = FIXTURE.read_bytes()
    lines = text.split(b"\n")  # one day per line
    cut = sum(len(line) + 1 for line in lines[:30]) + len(lines[30]) // 2  # in the middle of the 31st day
    broken = tmp_path / "eurofxref-hist-90d_cut.xml"
    broken.write_bytes(text[:cut])
    records = list(ecb.read(ecb.entity("fx_rates"), broken))
    assert [r.error for r in records[:30]] == [None] * 30
    assert len(records) == 31 and records[-1].error and records[-1].error.startswith("truncated")
    assert records[-1].payload.startswith('<Cube time="2017-01-20">') and records[-1].key is None
    assert records[-1].partition_date == date(2017, 1, 20)


def test_a_comma_rate_is_reported_not_landed_as_good(ecb: EcbSource, tmp_path: Path) -> None:
    bad = tmp_path / "eurofxref-daily_bad.xml"
    bad.write_text(
        "<Envelope><Cube><Cube time='2024-06-28'><Cube currency='USD' rate='1,0705'/></Cube>"
        "<Cube time='2024-06-27'><Cube currency='USD' rate='1.0710'/></Cube>"
        "<Cube time='2024-13-45'><Cube currency='USD' rate='1.0710'/></Cube></Cube></Envelope>"
    )
    records = list(ecb.read(ecb.entity("fx_rates"), bad))
    assert [r.key for r in records] == ["2024-06-28", "2024-06-27", None]
    assert "1,0705" in (records[0].error or "") and records[1].error is None
    assert "not an ISO date" in (records[2].error or "")


@pytest.mark.parametrize("text", [BILLION_LAUGHS, EXTERNAL_ENTITY], ids=["billion-laughs", "external-entity"])
def test_entity_bombs_and_dtds_are_refused(ecb: EcbSource, tmp_path: Path, text: str) -> None:
    hostile = tmp_path / "eurofxref-daily_hostile.xml"
    hostile.write_text(text)
    with pytest.raises(SourceError, match=r"ecb: eurofxref-daily_hostile.xml: refused: .*DTD"):
        list(ecb.read(ecb.entity("fx_rates"), hostile))
