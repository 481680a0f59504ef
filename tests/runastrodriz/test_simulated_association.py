"""The simulator's association option (hapgpu.simulate._association): association tables and
RAW files as the calibration pipeline's drizzle step reads them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from hapgpu.simulate._association import (
    association_ids,
    raw_primary_header,
    write_association,
)

MEMBERS = ("isim01a0q", "isim01a1q")


def test_association_ids_one_per_filter():
    roots = ["ib4606a0q", "ib4606a1q", "ib4606a2q", "ib4606a3q"]
    ids = association_ids(roots, ["F555W", "F555W", "F814W", "F814W"])
    assert ids == {"ib4606a0q": "ib4606010", "ib4606a1q": "ib4606010",
                   "ib4606a2q": "ib4606020", "ib4606a3q": "ib4606020"}


def test_visit_association(uvis_association):
    (asn,) = uvis_association.associations
    assert asn.asn == Path(uvis_association.outdir) / "isim01010_asn.fits"
    assert asn.members == MEMBERS
    with fits.open(asn.asn) as hdul:
        assert hdul[0].header["ASN_ID"] == "ISIM01010"
        table = hdul["ASN"]
        assert [c.name for c in table.columns] == ["MEMNAME", "MEMTYPE", "MEMPRSNT"]
        assert [c.format for c in table.columns] == ["14A", "14A", "L"]
        assert list(table.data["MEMNAME"]) == ["ISIM01A0Q", "ISIM01A1Q", "ISIM01010"]
        assert list(table.data["MEMTYPE"]) == ["EXP-DTH", "EXP-DTH", "PROD-DTH"]
        assert table.data["MEMPRSNT"].all()
    for member, raw, exposure in zip(MEMBERS, asn.raws, uvis_association.files):
        assert raw.name == f"{member}_raw.fits"
        primary = fits.getheader(exposure)
        assert (primary["ASN_ID"], primary["ASN_TAB"], primary["ASN_MTYP"]) == (
            "ISIM01010", "isim01010_asn.fits", "EXP-DTH")
        with fits.open(raw) as hdul:
            head = hdul[0].header
            assert head["DRIZCORR"] == "PERFORM" and head["FILENAME"] == raw.name
            assert head["IDCTAB"] == primary["IDCTAB"] and head["MDRIZTAB"] == primary["MDRIZTAB"]
            assert not any(str(head[k]) == "COMPLETE" for k in head if k.endswith("CORR"))
            assert [(h.name, h.ver) for h in hdul[1:]] == [
                (n, c) for c in (1, 2) for n in ("SCI", "ERR", "DQ")]
            assert all(h.data is None for h in hdul[1:])  # no raw pixels


def test_raw_header_switches():
    head = fits.Header({"FLATCORR": "COMPLETE", "CTECORR": "OMIT", "DRIZCORR": "COMPLETE"})
    raw = raw_primary_header(head, "x1", drizcorr="OMIT")
    assert (raw["FLATCORR"], raw["CTECORR"], raw["DRIZCORR"]) == ("PERFORM", "OMIT", "OMIT")
    assert head["FLATCORR"] == "COMPLETE"


@pytest.mark.reference
# stsci.tools calls chararray methods on the table columns (its deprecation, not ours)
@pytest.mark.filterwarnings("ignore::astropy.utils.exceptions.AstropyDeprecationWarning")
def test_stsci_tools_reads_the_association(uvis_association, tmp_path, monkeypatch):
    """stsci.tools' readASNTable (what drizzlepac reads associations with) finds the members
    and the product; writing the association again gives the same table."""
    from stsci.tools import asnutil

    (asn,) = uvis_association.associations
    monkeypatch.chdir(asn.asn.parent)  # readASNTable looks for the members in the cwd
    table = asnutil.readASNTable(asn.asn.name, None, prodonly=False)
    assert table["output"].lower() == "isim01010"
    assert [m.lower() for m in table["order"]] == list(MEMBERS)
    copy = write_association(tmp_path, "isim01010", uvis_association.files)
    assert np.array_equal(fits.getdata(copy.asn, 1)["MEMNAME"], fits.getdata(asn.asn, 1)["MEMNAME"])


def test_cli_association_flag(tmp_path):
    """``hapgpu simulate visit --association``: one association per filter with its members'
    RAW files; without the flag, none."""
    from hapgpu.cli import main

    out = tmp_path / "asn"
    assert main(["-q", "simulate", "visit", str(out), "--instrument", "acs-hrc",
                 "--n-exposures", "3", "--filters", "F555W,F814W", "--shape", "32",
                 "--seed", "2", "--association", "--no-progress"]) == 0
    tables = sorted(p.name for p in out.glob("*_asn.fits"))
    assert tables == ["jsim01010_asn.fits", "jsim01020_asn.fits"]
    members = [[str(m).strip().lower() for m in fits.getdata(out / t, 1)["MEMNAME"]]
               for t in tables]
    flts = sorted(p.name[:9] for p in out.glob("*_flt.fits"))
    assert members[0][:-1] + members[1][:-1] == flts
    assert [m[-1] for m in members] == ["jsim01010", "jsim01020"]
    for root in flts:
        assert fits.getval(out / f"{root}_raw.fits", "DRIZCORR") == "PERFORM"
        assert fits.getval(out / f"{root}_flt.fits", "ASN_TAB") in tables

    plain = tmp_path / "plain"
    assert main(["-q", "simulate", "visit", str(plain), "--instrument", "acs-hrc",
                 "--n-exposures", "1", "--shape", "32", "--no-progress"]) == 0
    assert not list(plain.glob("*_asn.fits")) and not list(plain.glob("*_raw.fits"))
