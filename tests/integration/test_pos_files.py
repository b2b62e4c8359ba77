"""The CSV connectors (POS, ads) on hand-made files: what bronze must keep exactly as received."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from retreasure.connectors.ads import AdsSource
from retreasure.connectors.pos import PosSource
from retreasure.settings import Settings

HEADER = (
    "type,receipt_id,line_no,sold_at,store_id,sku,title,quantity,unit_price,discount,tax,tax_rate,currency,"
    "discount_code,payment_method,loyalty_email,loyalty_phone\n"
)


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    return tmp_path / "landing"


@pytest.fixture
def pos(landing: Path) -> PosSource:
    return PosSource(Settings(_env_file=None, landing_dir=landing))  # type: ignore[call-arg]


def drop(landing: Path, relative: str, content: bytes | str) -> Path:
    path = landing / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def test_formula_like_and_multiline_cells_stay_as_received(pos: PosSource, landing: Path) -> None:
    rows = (
        'sale,BER-1,1,2025-03-04T10:15:00+01:00,BER,RT-1,"=HYPERLINK(""http://x"",""y"")",1,10.00,0.00,1.90,'
        "0.19,EUR,,card,@attacker,+49 30 1234567\n"
        'refund,BER-1,1,2025-03-04T18:59:00+01:00,BER,RT-1,"Lamp, brass\nwith shade",-1,10.00,-0.00,-1.90,'
        "0.19,EUR,,card,,\n"
    )
    path = drop(landing, "pos/sales/BER/2025-03-04/sales_10.csv", "\ufeff" + HEADER + rows)
    assert pos.files(pos.entity("sales")) == [path]
    sale, refund = pos.read(pos.entity("sales"), path)
    assert sale.error is None and refund.error is None
    assert sale.payload["title"] == '=HYPERLINK("http://x","y")'  # neutralised on export, never here
    assert sale.payload["loyalty_email"] == "@attacker" and sale.payload["loyalty_phone"] == "+49 30 1234567"
    assert refund.payload["title"] == "Lamp, brass\nwith shade" and refund.payload["quantity"] == "-1"
    assert (sale.key, refund.key) == ("BER-1/1/sale", "BER-1/1/refund")
    assert sale.partition_date == date(2025, 3, 4) and sale.origin == "pos/sales/BER/2025-03-04/sales_10.csv"
    assert "type" in sale.payload  # the BOM is not part of the first column's name


def test_drifted_header_cannot_shift_columns(pos: PosSource, landing: Path) -> None:
    content = "movement_id,at,store_id,bin_location,sku,change,reason,on_hand_after,receipt_id\n"
    content += "M1,2025-03-04T10:00:00+01:00,BER,A-3,RT-1,-1,sold,0,BER-1\n"
    path = drop(landing, "pos/inventory/BER/2025-03-04/inventory_10.csv", content)
    [record] = pos.read(pos.entity("inventory"), path)
    assert record.error is None and record.payload["sku"] == "RT-1" and record.payload["bin_location"] == "A-3"


def test_broken_rows_are_reported_and_the_good_ones_kept(pos: PosSource, landing: Path) -> None:
    good = "sale,BER-2,1,2025-03-04T11:00:00+01:00,BER,RT-2,Vase,1,12.50,0.00,2.38,0.19,EUR,,cash,,\n"
    comma = "sale,BER-2,1,2025-03-04T11:00:00+01:00,BER,RT-2,Vase,1,12,50,0.00,2.38,0.19,EUR,,cash,,\n"
    quoted = 'sale,BER-3,1,2025-03-04T11:00:00+01:00,BER,RT-3,Cup,1,"12,50",0.00,2.38,0.19,EUR,,cash,,\n'
    latin1 = "sale,BER-4,1,2025-03-04T11:00:00+01:00,BER,RT-4,Caf\xe9,1,1.00,0.00,0.19,0.19,EUR,,cash,,\n"
    cut = "sale,BER-5,1,2025-03-04T11:30:00+01:00,BER,RT-5,Pl"
    content = (HEADER + good + comma + quoted).encode() + latin1.encode("latin-1") + (good + cut).encode()
    path = drop(landing, "pos/sales/BER/2025-03-04/sales_11.csv", content)
    records = list(pos.read(pos.entity("sales"), path))
    assert [r.error is None for r in records] == [True, False, False, False, True, False]
    assert records[1].payload == comma.rstrip("\n") and "18 cells for 17 columns" in (records[1].error or "")
    assert records[1].partition_date == date(2025, 3, 4)  # a broken row lands in its file's day
    assert "'12,50' is not a plain decimal" in (records[2].error or "") and records[2].key == "BER-3/1/sale"
    assert records[3].error == "not UTF-8 text"
    assert (records[5].error or "").startswith("truncated") and records[5].payload == cut


def test_ads_reports_of_both_platforms_are_keyed(landing: Path) -> None:
    ads = AdsSource(Settings(_env_file=None, landing_dir=landing))  # type: ignore[call-arg]
    drop(
        landing,
        "ads/google_ads/spend_2025-03-04.csv",
        "campaign_id,campaign_name,date,cost,currency_code,clicks,impressions\nG-1,spring,2025-03-04,10.55,EUR,5,269\n",
    )
    drop(
        landing,
        "ads/meta_ads/spend_2025-03-04.csv",
        "date_start,campaign_id,campaign_name,spend,account_currency,impressions,clicks\n"
        "2025-03-04,M-1,finds,5.75,USD,2028,19\n2025-03-04,M-2,carts,+5.00,USD,1,1\n",
    )
    entity = ads.entity("spend")
    records = [r for path in ads.files(entity) for r in ads.read(entity, path)]
    assert [r.key for r in records] == [
        "google_ads/G-1/2025-03-04",
        "meta_ads/M-1/2025-03-04",
        "meta_ads/M-2/2025-03-04",
    ]
    assert records[0].payload["cost"] == "10.55" and records[1].payload["spend"] == "5.75"
    assert all(r.partition_date == date(2025, 3, 4) for r in records)
    assert records[2].payload["spend"] == "+5.00" and "not a plain decimal" in (records[2].error or "")
