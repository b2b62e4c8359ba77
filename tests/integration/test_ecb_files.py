"""The ECB connector on real ECB files and on hostile or broken XML: each currency's rate of each day is one
record, so one bad rate is quarantined alone (with every reason it has) and the day's other rates land."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from defusedxml.ElementTree import fromstring, parse
from hypothesis import assume, given
from hypothesis import strategies as st

from retreasure.bronze.ingest import run_ingest
from retreasure.connectors.base import RawRecord, SourceError
from retreasure.connectors.ecb import EcbSource
from retreasure.engine.models import load_models
from retreasure.engine.runner import run_model
from retreasure.exitcodes import ExitCode
from retreasure.lake import Lake, TableRef
from retreasure.settings import Settings
from tests.conftest import HMAC_KEY, VAULT_KEY
from tests.helpers import run_cli

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
ENVELOPE = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<gesmes:Envelope xmlns:gesmes="http://www.gesmes.org/xml/2002-08-01" '
    'xmlns="http://www.ecb.int/vocabulary/2002-08-01/eurofxref">\n\t<gesmes:subject>Reference rates</gesmes:subject>'
    "\n\t<Cube>\n{days}\t</Cube>\n</gesmes:Envelope>\n"
)
FX_RATES, BRONZE, QUARANTINE = (
    TableRef("silver", "fx_rates"),
    TableRef("bronze", "ecb_fx_rates"),
    TableRef("quarantine", "ecb_fx_rates"),
)


@pytest.fixture
def ecb(tmp_path: Path) -> EcbSource:
    return EcbSource(Settings(_env_file=None, landing_dir=tmp_path))  # type: ignore[call-arg]


def read(source: EcbSource, path: Path) -> list[RawRecord]:
    return list(source.read(source.entity("fx_rates"), path))


def problems(error: str | None) -> list[str]:
    """A record's reasons, one per problem."""
    assert error and error.startswith("malformed: "), error
    return error.removeprefix("malformed: ").split("; ")


def calendar(published: dict[tuple[date, str], Decimal]) -> dict[tuple[date, str], tuple[Decimal, date]]:
    """What silver.fx_rates must hold, worked out here in Python: every calendar day from the first published one
    to ten days past the last, each currency at its last published rate on or before that day, EUR at 1."""
    first, last = min(d for d, _ in published), max(d for d, _ in published) + timedelta(days=10)
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    expected: dict[tuple[date, str], tuple[Decimal, date]] = {(d, "EUR"): (Decimal(1), d) for d in days}
    for currency in {c for _, c in published}:
        current = None
        for day in days:
            if (day, currency) in published:
                current = (published[(day, currency)], day)
            if current:
                expected[(day, currency)] = current
    return expected


def silver_rates(lake: Lake) -> dict[tuple[date, str], tuple[Decimal, date]]:
    """silver.fx_rates built by the engine, as (day, currency) -> (rate, published day)."""
    run = run_model(lake, load_models()[FX_RATES])
    assert not run.blocked and all(c.passed for c in run.checks), [c for c in run.checks if not c.passed]
    found = {}
    for row in lake.query(f"SELECT * FROM {FX_RATES}", [FX_RATES]).to_pylist():
        assert row["is_published"] == (row["rate_date"] == row["published_date"]), row
        found[(row["rate_date"], row["currency"])] = (row["rate_per_eur"], row["published_date"])
    return found


# -- the real ECB file ------------------------------------------------------------------------------------------


def fixture_rates() -> dict[tuple[date, str], Decimal]:
    """The fixture's rates read with ElementTree alone, as an independent account of what the file holds."""
    rates = {}
    for cube in parse(FIXTURE).iter("{http://www.ecb.int/vocabulary/2002-08-01/eurofxref}Cube"):
        if "time" in cube.attrib:
            for entry in cube:
                rates[(date.fromisoformat(cube.get("time")), entry.get("currency"))] = Decimal(entry.get("rate"))
    return rates


def test_real_90_day_history_gives_64_business_days_of_31_rates(ecb: EcbSource) -> None:
    records = read(ecb, FIXTURE)
    assert len(records) == 64 * 31 and all(r.error is None for r in records)
    keys = [r.key or "" for r in records]
    assert len(set(keys)) == len(keys)
    days = list(dict.fromkeys(date.fromisoformat(k.split("/")[0]) for k in keys))  # in the file's order
    assert len(days) == 64 and days == sorted(days, reverse=True)  # newest first, no repeats
    assert (days[0], days[-1]) == (date(2017, 3, 3), date(2016, 12, 5))
    assert all(d.weekday() < 5 for d in days) and date(2016, 12, 26) not in days  # a TARGET holiday
    assert {k.split("/")[1] for k in keys} == {c for _, c in fixture_rates()} and len({k[11:] for k in keys}) == 31
    assert all(r.partition_date == date.fromisoformat(r.key[:10]) for r in records)  # type: ignore[index]
    assert records[0].payload == '<Cube time="2017-03-03"><Cube currency="USD" rate="1.0565"/></Cube>'
    assert records[0].key == "2017-03-03/USD"
    landed = {}
    for r in records:
        cube = fromstring(r.payload)
        (entry,) = list(cube)
        landed[(date.fromisoformat(cube.get("time")), entry.get("currency"))] = Decimal(entry.get("rate"))
    assert landed == fixture_rates()
    assert landed[(date(2017, 3, 3), "GBP")] == Decimal("0.86355")


def test_silver_over_the_real_history_is_every_calendar_day_carried_forward(make_settings: Any) -> None:
    settings = make_settings()
    (settings.landing_dir / "ecb").mkdir(parents=True)
    (settings.landing_dir / "ecb" / FIXTURE.name).write_bytes(FIXTURE.read_bytes())
    lake = Lake.from_settings(settings)
    assert [(r.status, r.records, r.malformed) for r in run_ingest(settings, lake, ["ecb"])] == [("success", 1984, 0)]
    got = silver_rates(lake)
    assert got == calendar(fixture_rates())
    assert len(got) == ((date(2017, 3, 13) - date(2016, 12, 5)).days + 1) * 32  # ten days past the last; and EUR


def test_a_cut_history_lands_every_rate_of_the_whole_days_before_the_cut(ecb: EcbSource, tmp_path: Path) -> None:
    text = FIXTURE.read_bytes()
    lines = text.split(b"\n")  # one day per line
    cut = sum(len(line) + 1 for line in lines[:30]) + len(lines[30]) // 2  # in the middle of the 31st day
    broken = tmp_path / "eurofxref-hist-90d_cut.xml"
    broken.write_bytes(text[:cut])
    records = read(ecb, broken)
    assert len(records) == 30 * 31 + 1 and [r.error for r in records[:-1]] == [None] * 30 * 31
    whole_days = sorted({d for d, _ in fixture_rates()}, reverse=True)[:30]
    assert {date.fromisoformat((r.key or "")[:10]) for r in records[:-1]} == set(whole_days)
    last = records[-1]
    assert last.error and last.error.startswith("truncated: the file stops after 30 whole days")
    assert last.payload.startswith('<Cube time="2017-01-20">') and last.key is None
    assert last.partition_date == date(2017, 1, 20)


@pytest.mark.parametrize("text", [BILLION_LAUGHS, EXTERNAL_ENTITY], ids=["billion-laughs", "external-entity"])
def test_entity_bombs_and_dtds_are_refused(ecb: EcbSource, tmp_path: Path, text: str) -> None:
    hostile = tmp_path / "eurofxref-daily_hostile.xml"
    hostile.write_text(text)
    with pytest.raises(SourceError, match=r"ecb: eurofxref-daily_hostile.xml: refused: .*DTD"):
        read(ecb, hostile)


# -- what a broken file does, as the user sees it -------------------------------------------------------------

BROKEN_DAILY = ENVELOPE.format(
    days="\t\t<Cube time='2025-03-04'>\n"
    "\t\t\t<Cube currency='USD' rate='1.08x12'/>\n"
    "\t\t\t<Cube currency='CHF' rate='0.9512'/>\n"
    "\t\t\t<Cube currency='gb p' rate='0,8612'/>\n"
    "\t\t</Cube>\n"
    "\t\t<Cube>\n\t\t\t<Cube currency='JPY' rate='160.12'/>\n\t\t</Cube>\n"
    "\t\t<Cube time='2025-03-03'>\n"
    "\t\t\t<Cube currency='USD' rate='1.0790'/>\n"
    "\t\t\t<Cube currency='CHF' rate='0.9498'/>\n"
    "\t\t</Cube>\n"
)
# The same rates in the history file's layout: double quotes, no indentation, attributes in another order.
BROKEN_HISTORY = (
    BROKEN_DAILY.replace("'", '"')
    .replace("\t", "")
    .replace("\n", "")
    .replace('currency="CHF" rate="0.9512"', 'rate="0.9512" currency="CHF"')
)


def test_ingest_lands_a_days_good_rates_and_quarantines_each_bad_one_with_every_reason(tmp_path: Path) -> None:
    landing = tmp_path / "landing" / "ecb"
    landing.mkdir(parents=True)
    (landing / "eurofxref-daily_2025-03-04.xml").write_text(BROKEN_DAILY)
    (landing / "eurofxref-hist-90d_2025-03-04.xml").write_text(BROKEN_HISTORY)
    ingest = run_cli(tmp_path, "ingest", "--source", "ecb")
    # Rates quarantined one by one are normal operation: the run did all it was asked.
    assert ingest.returncode == ExitCode.OK, ingest.stdout[-3000:] + ingest.stderr[-3000:]
    assert "ecb_fx_rates" in ingest.stdout
    lake = Lake(tmp_path / "lake")

    good = lake.query(f"SELECT record_key, raw FROM {BRONZE} WHERE error IS NULL ORDER BY ALL", [BRONZE]).to_pylist()
    # Both files carry every rate; each lands once, in the same text whatever the file's layout.
    assert [(g["record_key"], g["raw"]) for g in good] == [
        ("2025-03-03/CHF", '<Cube time="2025-03-03"><Cube currency="CHF" rate="0.9498"/></Cube>'),
        ("2025-03-03/USD", '<Cube time="2025-03-03"><Cube currency="USD" rate="1.0790"/></Cube>'),
        ("2025-03-04/CHF", '<Cube time="2025-03-04"><Cube currency="CHF" rate="0.9512"/></Cube>'),
    ]
    bad = lake.query(f"SELECT record_key, raw, rule, reason, origin FROM {QUARANTINE} ORDER BY raw", [QUARANTINE])
    reasons = {r["raw"]: (r["record_key"], r["rule"], problems(r["reason"])) for r in bad.to_pylist()}
    assert reasons == {
        '<Cube><Cube currency="JPY" rate="160.12"/></Cube>': (
            None,
            "bronze.parseable",
            ["the <Cube> holding the rate has no time"],
        ),
        '<Cube time="2025-03-04"><Cube currency="USD" rate="1.08x12"/></Cube>': (
            "2025-03-04/USD",
            "bronze.parseable",
            ["rate '1.08x12' for USD is not a positive decimal (digits, one '.')"],
        ),
        '<Cube time="2025-03-04"><Cube currency="gb p" rate="0,8612"/></Cube>': (
            None,
            "bronze.parseable",
            [
                "currency 'gb p' is not an ISO 4217 code (three capital letters)",
                "rate '0,8612' for 'gb p' is not a positive decimal (digits, one '.')",
            ],
        ),
    }
    log = TableRef("ops", "ingest_log")
    logged = lake.query(f"SELECT status, records, malformed, new_records FROM {log}", [log]).to_pylist()
    assert logged == [{"status": "success", "records": 12, "malformed": 6, "new_records": 6}]

    # Silver: CHF is published on the 4th; USD, whose rate that day was bad, carries the 3rd's over it.
    got = silver_rates(lake)
    assert got[(date(2025, 3, 4), "CHF")] == (Decimal("0.9512"), date(2025, 3, 4))
    assert got[(date(2025, 3, 4), "USD")] == (Decimal("1.0790"), date(2025, 3, 3))
    assert got == calendar(
        {
            (date(2025, 3, 3), "USD"): Decimal("1.0790"),
            (date(2025, 3, 3), "CHF"): Decimal("0.9498"),
            (date(2025, 3, 4), "CHF"): Decimal("0.9512"),
        }
    )
    assert not any(c in {"JPY", "gb p"} for _, c in got)


def test_odd_shapes_are_reported_whole_never_dropped(ecb: EcbSource, tmp_path: Path) -> None:
    """A day without rates, a rate with something inside, an entry that is no <Cube>, a rate outside any day."""
    odd = tmp_path / "eurofxref-daily_odd.xml"
    odd.write_text(
        "<Envelope><Cube><Cube time='2025-03-04'/><Cube time='2025-03-05'><Cube currency='USD' rate='1.07'>"
        "<Cube currency='GBP' rate='0.85'/></Cube><Rate currency='CHF' rate='0.95'/></Cube></Cube>"
        "<Cube currency='JPY' rate='170'/></Envelope>"
    )
    records = read(ecb, odd)
    assert [(r.payload, r.key, problems(r.error)) for r in records] == [
        ('<Cube time="2025-03-04"/>', None, ["the day holds no rates"]),
        (
            '<Cube time="2025-03-05"><Cube currency="USD" rate="1.07"><Cube currency="GBP" rate="0.85"/></Cube></Cube>',
            "2025-03-05/USD",
            ["the rate entry holds 1 element(s)"],
        ),
        (
            '<Cube time="2025-03-05"><Rate currency="CHF" rate="0.95"/></Cube>',
            "2025-03-05/CHF",
            ["<Rate> is not a <Cube> rate entry"],
        ),
        ('<Cube currency="JPY" rate="170"/>', None, ["the rate is outside any <Cube> of a day, so it has no time"]),
    ]
    assert [r.partition_date for r in records] == [date(2025, 3, 4), date(2025, 3, 5), date(2025, 3, 5), None]


# -- generated variants: days x currencies x broken rates ------------------------------------------------------

CURRENCIES = ("USD", "JPY", "GBP", "CHF", "SEK", "AUD", "CAD", "NOK")
# Every way a rate's attributes come broken, and the words its reason must hold (None: the attribute is absent).
BAD_CURRENCIES = st.sampled_from(["usd", "US", "EURO", "U$D", "", "\u0661\u0662\u0663", " USD"])
BAD_RATES = {
    "decimal comma": st.just(","),
    "empty": st.just(""),
    "negative": st.just("-"),
    "zero": st.sampled_from(["0", "0.0000", "0.0000001"]),
    "non-numeric": st.sampled_from(["abc", "1.2.3", "1e3", "NaN", " 1.08", "\u0661.\u0660\u0668", "0x1F", "1_000.5"]),
    "too big": st.just("1" * 13),
}
# What can be wrong with one entry: its currency, its rate, or both.
BROKEN_ENTRIES = [
    (c, r)
    for c in ("good", "no currency", "bad currency")
    for r in ("good", "no rate", *BAD_RATES)
    if (c, r) != ("good", "good")
]
BAD_DAYS = st.sampled_from(["2025-13-01", "2025-02-30", "20250301", "2025-3-1", "yesterday", ""])


@dataclass
class Entry:
    """One rate as written in the file, and what is wrong with it (reasons' words; none: a good rate)."""

    currency: str | None
    rate: str | None
    faults: list[str] = field(default_factory=list)

    def element(self, quote: str, rate_first: bool) -> str:
        pairs = [("currency", self.currency), ("rate", self.rate)]
        attrs = [
            f"{name}={quote}{value}{quote}" for name, value in pairs[:: -1 if rate_first else 1] if value is not None
        ]
        return f"<Cube {' '.join(attrs)}/>"

    def canonical(self) -> str:
        pairs = [("currency", self.currency), ("rate", self.rate)]
        return "<Cube" + "".join(f' {n}="{v}"' for n, v in pairs if v is not None) + "/>"


@dataclass
class Day:
    time: str | None
    entries: list[Entry]
    faults: list[str] = field(default_factory=list)
    drifted: bool = False  # an extra attribute, as a drifted file has

    def canonical_opening(self) -> str:
        attrs = ([("published", "yes")] if self.drifted else []) + (
            [("time", self.time)] if self.time is not None else []
        )
        return "<Cube" + "".join(f' {n}="{v}"' for n, v in attrs) + ">"


@st.composite
def entries(draw: st.DrawFn, currency: str) -> Entry:
    """A good rate, half the time; else one with its currency broken, its rate broken, or both."""
    rate = f"{draw(st.decimals(min_value=Decimal('0.0001'), max_value=Decimal('99999'), places=4)):.4f}"
    entry = Entry(currency, rate)
    if draw(st.booleans()):
        return entry
    currency_fault, rate_fault = draw(st.sampled_from(BROKEN_ENTRIES))
    if currency_fault == "no currency":
        entry.currency, entry.faults = None, ["no currency"]
    elif currency_fault == "bad currency":
        entry.currency = draw(BAD_CURRENCIES)
        entry.faults = [f"currency {entry.currency!r} is not an ISO 4217 code"]
    if rate_fault == "no rate":
        entry.rate = None
        entry.faults.append("no rate")
    elif rate_fault != "good":
        bad = draw(BAD_RATES[rate_fault])
        entry.rate = {",": rate.replace(".", ","), "-": "-" + rate}.get(bad, bad)
        entry.faults.append(f"rate {entry.rate!r}")
    return entry


@st.composite
def days(draw: st.DrawFn) -> list[Day]:
    count = draw(st.integers(1, 6))
    first = draw(st.dates(min_value=date(1999, 1, 4), max_value=date(2030, 12, 31)))
    gaps = draw(st.lists(st.integers(1, 4), min_size=count, max_size=count))
    found = []
    for n in range(count):
        day = first + timedelta(days=sum(gaps[:n]))
        currencies = draw(st.lists(st.sampled_from(CURRENCIES), min_size=1, max_size=5, unique=True))
        time: str | None = day.isoformat()
        faults: list[str] = []
        match draw(st.sampled_from(["good", "good", "good", "no time", "bad time"])):
            case "no time":
                time, faults = None, ["has no time"]
            case "bad time":
                time = draw(BAD_DAYS)
                faults = [f"day {time!r} is not an ISO date"]
        found.append(Day(time, [draw(entries(c)) for c in currencies], faults, draw(st.booleans())))
    return found


def render(days_: list[Day], daily: bool, rate_first: bool) -> str:
    """The days in the daily file's layout (tabs, single quotes) or the history file's (compact, double)."""
    quote, indent, newline = ("'", "\t", "\n") if daily else ('"', "", "")
    text = ""
    for day in days_:
        attrs = (f" time={quote}{day.time}{quote}" if day.time is not None else "") + (
            f" published={quote}yes{quote}" if day.drifted else ""
        )
        rates = "".join(f"{indent * 3}{e.element(quote, rate_first)}{newline}" for e in day.entries)
        text += f"{indent * 2}<Cube{attrs}>{newline}{rates}{indent * 2}</Cube>{newline}"
    return ENVELOPE.format(days=text)


def key_of(day: Day, entry: Entry) -> str:
    return f"{day.time}/{entry.currency}"


@given(days(), st.booleans(), st.booleans())
def test_generated_files_land_exactly_the_good_rates_and_report_every_problem_of_the_bad(
    generated: list[Day], daily: bool, rate_first: bool
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "eurofxref-daily_generated.xml"
        path.write_text(render(generated, daily, rate_first), encoding="utf-8")
        source = EcbSource(Settings(_env_file=None, landing_dir=Path(folder)))  # type: ignore[call-arg]
        records = read(source, path)
    written = [(day, entry) for day in generated for entry in day.entries]
    assert len(records) == len(written)  # one record per rate, in the file's order
    for record, (day, entry) in zip(records, written, strict=True):
        assert record.payload == f"{day.canonical_opening()}{entry.canonical()}</Cube>"
        wanted = [*day.faults, *entry.faults]
        if not wanted:
            assert record.error is None, record
            assert record.key == key_of(day, entry)
            assert record.partition_date == date.fromisoformat(day.time or "")
            continue
        reasons = problems(record.error)
        # Every problem is named, each in its own reason, and nothing else is.
        assert len(reasons) == len(wanted), (reasons, wanted)
        assert all(any(w in r for r in reasons) for w in wanted), (reasons, wanted)


@given(days(), st.booleans())
def test_generated_files_through_ingest_and_silver(generated: list[Day], rate_first: bool) -> None:
    """Both layouts of the same days in one landing folder, ingested into a real lake and built into silver."""
    good = {
        key_of(day, entry): (day, entry) for day in generated for entry in day.entries if not day.faults + entry.faults
    }
    assume(good)  # silver holds no row without one good rate: its row-count check says so
    bad = {
        f"{day.canonical_opening()}{entry.canonical()}</Cube>": [*day.faults, *entry.faults]
        for day in generated
        for entry in day.entries
        if day.faults + entry.faults
    }
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        settings_ = Settings(  # type: ignore[call-arg]
            _env_file=None,
            lake_uri=str(root / "lake"),
            landing_dir=root / "landing",
            pii_hmac_key=HMAC_KEY,
            pii_vault_key=VAULT_KEY,
        )
        (root / "landing" / "ecb").mkdir(parents=True)
        for name, daily in (("eurofxref-daily_x.xml", True), ("eurofxref-hist-90d_x.xml", False)):
            (root / "landing" / "ecb" / name).write_text(render(generated, daily, rate_first), encoding="utf-8")
        lake = Lake.from_settings(settings_)
        runs = run_ingest(settings_, lake, ["ecb"])
        broken = sum(1 for day in generated for entry in day.entries if day.faults + entry.faults)
        assert [(r.status, r.malformed) for r in runs] == [("success", 2 * broken)]  # read in both files
        landed = lake.query(f"SELECT record_key, raw FROM {BRONZE} WHERE error IS NULL", [BRONZE]).to_pylist()
        assert sorted(r["record_key"] for r in landed) == sorted(good)  # each good rate once, from either file
        quarantined = (
            lake.query(f"SELECT raw, reason FROM {QUARANTINE}", [QUARANTINE]).to_pylist()
            if lake.exists(QUARANTINE)
            else []
        )
        assert sorted(q["raw"] for q in quarantined) == sorted(bad)
        for q in quarantined:
            reasons = problems(q["reason"])
            assert len(reasons) == len(bad[q["raw"]]) and all(any(w in r for r in reasons) for w in bad[q["raw"]])
        published = {
            (date.fromisoformat(day.time or ""), entry.currency or ""): Decimal(entry.rate or "")
            for day, entry in good.values()
        }
        assert silver_rates(lake) == calendar(published)
