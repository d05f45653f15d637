"""Sites named on the command line with the grade, scanner profile and number of their synthetic cases:
NAME[:GRADE][:PROFILE][:CASES]."""

from fractions import Fraction

import pytest

from fedbrats.federation.catalog import job_definition
from fedbrats.prepare.phantom.scanner import SCANNER_PROFILES
from fedbrats.prepare.site_specs import (
    BRATS18_HGG_SHARE,
    FORMS,
    REFERENCE_SITES,
    SiteSpec,
    parse_site,
    parse_sites,
    site_names,
    site_order,
)
from fedbrats.prepare.synthetic import split_sizes


def test_grades_of_the_reference_and_of_other_sites():
    assert [str(s) for s in parse_sites(["site-1", "site-2", "site-3"])] == ["site-1:HGG", "site-2:LGG", "site-3:mix"]
    assert REFERENCE_SITES == ["site-1:HGG", "site-2:LGG"]
    assert parse_site("site-2:hgg").hgg_share == 1 and parse_site("hospital_b.x:LGG").hgg_share == 0
    assert parse_site("site-4:mix").hgg_share == BRATS18_HGG_SHARE == Fraction(210, 285)
    assert str(parse_site("site-5:mix=0.25")) == "site-5:mix=0.25" and str(parse_site("s:mix=1")) == "s:HGG"
    assert site_names(["a:LGG", "b"]) == ["a", "b"]


@pytest.mark.parametrize(
    "texts, message",
    [
        (["site-1:GBM"], "'GBM' is neither a grade, a scanner profile nor a number of cases: the grade must be HGG"),
        (["site-1:GBM"], "the profile one of reference, gain-bias, noisy, contrast, thick-slice, small-fov"),
        (["site-3:mix:mri"], "site 'site-3:mix:mri': 'mri' is neither"),
        (["site-3::5"], "'' is neither a grade"),
        (["site-3:-5"], "'-5' is neither a grade"),
        (["site-3:0"], "site 'site-3:0': the number of cases must be positive"),
        (["site-3:HGG:noisy:LGG"], "site 'site-3:HGG:noisy:LGG': more than one grade"),
        (["site-3:noisy:contrast"], "more than one profile"),
        (["site-3:5:6"], "more than one cases"),
        (["site-1:mix=1.5"], "the grade must be"),
        (["site-1:mix=x"], "the grade must be"),
        (["../up:HGG"], "a name is letters, digits"),
        ([":HGG"], "a name is letters, digits"),
        (["a", "b:LGG", "a:HGG"], "sites named more than once: a"),
        ([], "no site given"),
    ],
)
def test_bad_sites_are_refused(texts, message):
    with pytest.raises(ValueError, match=message):
        parse_sites(texts)


def test_profiles_and_case_counts_round_trip():
    spec = parse_site("site-3:mix:thick-slice:23")
    assert spec == SiteSpec("site-3", BRATS18_HGG_SHARE, "thick-slice", 23) and str(spec) == "site-3:mix:thick-slice:23"
    assert parse_site("site-1:HGG:reference:57") == SiteSpec("site-1", Fraction(1), "reference", 57)
    assert str(parse_site("site-1:HGG:reference:57")) == "site-1:HGG:57"  # the default profile is left out
    assert str(parse_site("site-1:reference")) == "site-1:HGG" and parse_site("site-1").profile == "reference"
    assert parse_site("site-1").cases == 0
    # fields are told apart by their form, in any order; profile names in any case
    assert parse_site("x:12:Noisy:LGG") == SiteSpec("x", Fraction(0), "noisy", 12)
    assert parse_site("site-2:small-fov") == SiteSpec("site-2", Fraction(0), "small-fov")  # site-2 stays LGG
    for text in ["site-1", "a:mix=0.25:contrast", "b:LGG:7", "c:HGG:clinical-1.5t:3", *heterogeneous_sites()]:
        assert parse_site(str(parse_site(text))) == parse_site(text), text
    assert all(name in FORMS for name in SCANNER_PROFILES) and "NAME[:GRADE][:PROFILE][:CASES]" in FORMS


def heterogeneous_sites():
    return job_definition("brats_hetero").synthetic_sites


def test_the_heterogeneous_federation():
    sites = parse_sites(heterogeneous_sites())
    assert [s.name for s in sites] == ["site-1", "site-2", "site-3", "site-4"]
    assert [split_sizes(s.cases)[0] for s in sites] == [40, 24, 16, 8]
    assert len({s.profile for s in sites}) == 4 and len({s.grade for s in sites}) >= 2
    assert all(s.profile in SCANNER_PROFILES for s in sites)


def test_a_mixed_site_spreads_its_grades_over_its_cases():
    grades = parse_site("site-3:mix").case_grades(10)
    assert grades.count("HGG") == round(10 * 210 / 285) == 7
    assert grades[-2:] == ["HGG", "LGG"] and grades[:2] == ["HGG", "LGG"]  # the last cases (testing) hold both
    assert parse_site("x:mix=0.5").case_grades(4) == ["HGG", "LGG", "HGG", "LGG"]
    assert set(parse_site("site-1").case_grades(5)) == {"HGG"} and parse_site("x:mix=0").case_grades(0) == []


def test_sites_sort_by_their_numbers():
    names = ["site-10", "site-2", "site-1", "hospital"]
    assert sorted(names, key=site_order) == ["hospital", "site-1", "site-2", "site-10"]
