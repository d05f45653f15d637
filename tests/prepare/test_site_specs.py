"""Sites named on the command line with the grade of their synthetic cases: NAME[:GRADE]."""

from fractions import Fraction

import pytest

from fedbrats.prepare.site_specs import (
    BRATS18_HGG_SHARE,
    REFERENCE_SITES,
    parse_site,
    parse_sites,
    site_names,
    site_order,
)


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
        (["site-1:GBM"], "the grade must be HGG, LGG, mix or mix=F"),
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


def test_a_mixed_site_spreads_its_grades_over_its_cases():
    grades = parse_site("site-3:mix").case_grades(10)
    assert grades.count("HGG") == round(10 * 210 / 285) == 7
    assert grades[-2:] == ["HGG", "LGG"] and grades[:2] == ["HGG", "LGG"]  # the last cases (testing) hold both
    assert parse_site("x:mix=0.5").case_grades(4) == ["HGG", "LGG", "HGG", "LGG"]
    assert set(parse_site("site-1").case_grades(5)) == {"HGG"} and parse_site("x:mix=0").case_grades(0) == []


def test_sites_sort_by_their_numbers():
    names = ["site-10", "site-2", "site-1", "hospital"]
    assert sorted(names, key=site_order) == ["hospital", "site-1", "site-2", "site-10"]
