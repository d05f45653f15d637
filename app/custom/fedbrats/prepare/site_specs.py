"""Sites named on the command line, with the grade, scanner profile and number of their synthetic cases:
``NAME[:GRADE][:PROFILE][:CASES]``.

The fields after the name are told apart by their form. GRADE is ``HGG``, ``LGG``, ``mix`` (both, in BraTS 2018's
proportion of 210 HGG to 75 LGG) or ``mix=F`` (a share F of HGG cases, from 0 to 1). A site named without a grade
keeps its grade in the reference federation (site-1 HGG, site-2 LGG); any other holds the BraTS 2018 mix. PROFILE is
a scanner profile of :data:`~fedbrats.prepare.phantom.scanner.SCANNER_PROFILES` (default ``reference``). CASES, a
positive whole number, is the site's number of cases, in place of the count the command gives every site.
``site-1:HGG site-2:LGG site-3:mix`` is a federation of three; ``site-3:mix:thick-slice:23`` a site of 23 cases
acquired in thick slices.
"""

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import List, Sequence, Union

from fedbrats.prepare.phantom.scanner import REFERENCE, SCANNER_PROFILES
from fedbrats.runtime.constants import BRATS18_GRADE_COUNTS, GRADES, SITE_GRADES

MIX = "mix"
BRATS18_HGG_SHARE = Fraction(BRATS18_GRADE_COUNTS["HGG"], sum(BRATS18_GRADE_COUNTS.values()))
SITE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
"""A site name FLARE takes as a client name and that can name a folder and a datalist."""
FORMS = (
    "NAME[:GRADE][:PROFILE][:CASES] with GRADE HGG, LGG, mix or mix=F (a share F of HGG from 0 to 1), PROFILE a "
    f"scanner profile ({', '.join(SCANNER_PROFILES)}; default {REFERENCE}) and CASES the site's number of cases"
)
REFERENCE_SITES = [f"{site}:{grade}" for site, grade in SITE_GRADES.items()]
"""The reference federation as ``NAME:GRADE``: site-1:HGG site-2:LGG."""


@dataclass(frozen=True)
class SiteSpec:
    """A site, the share of its synthetic cases that are high-grade (1: HGG only, 0: LGG only), their scanner
    profile and their number (0: the count the command gives every site)."""

    name: str
    hgg_share: Fraction
    profile: str = REFERENCE
    cases: int = 0

    @property
    def grade(self) -> str:
        """``HGG``, ``LGG`` or ``mix`` with the share of HGG, as :func:`parse_site` reads it."""
        if self.hgg_share in (0, 1):
            return GRADES[0] if self.hgg_share == 1 else GRADES[1]
        return MIX if self.hgg_share == BRATS18_HGG_SHARE else f"{MIX}={float(self.hgg_share):g}"

    def case_grades(self, n: int) -> List[str]:
        """The grade of each of ``n`` cases: round(n x share) HGG, spread evenly so that every split of a site's
        cases in order gets its share."""
        share = self.hgg_share
        hgg = [int(k * share + Fraction(1, 2)) for k in range(n + 1)]
        return [GRADES[0] if hgg[k + 1] > hgg[k] else GRADES[1] for k in range(n)]

    def __str__(self) -> str:
        fields = [self.name, self.grade]
        if self.profile != REFERENCE:
            fields.append(self.profile)
        if self.cases:
            fields.append(str(self.cases))
        return ":".join(fields)


def _share(grade: str, text: str) -> Fraction:
    if grade.upper() in GRADES:
        return Fraction(1) if grade.upper() == GRADES[0] else Fraction(0)
    if grade.lower() == MIX:
        return BRATS18_HGG_SHARE
    name, sep, value = grade.partition("=")
    if name.lower() == MIX and sep:
        try:
            share = Fraction(value)
        except (ValueError, ZeroDivisionError):
            share = Fraction(-1)
        if 0 <= share <= 1:
            return share
    raise ValueError(f"site {text!r}: the grade must be HGG, LGG, mix or mix=F with F from 0 to 1")


def _is_grade(field: str) -> bool:
    return field.upper() in GRADES or field.lower() == MIX or field.lower().startswith(f"{MIX}=")


def parse_site(text: Union[str, SiteSpec]) -> SiteSpec:
    """The site of ``NAME[:GRADE][:PROFILE][:CASES]`` (see the module); a :class:`SiteSpec` is returned as it is."""
    if isinstance(text, SiteSpec):
        return text
    name, *fields = str(text).split(":")
    if not SITE_NAME.match(name):
        raise ValueError(f"site {text!r}: expected {FORMS}; a name is letters, digits, '.', '_' and '-'")
    found = {}
    for field in fields:
        if _is_grade(field):
            kind, value = "grade", _share(field, text)
        elif field.lower() in SCANNER_PROFILES:
            kind, value = "profile", field.lower()
        elif field.isdigit() and field.isascii():
            kind, value = "cases", int(field)
            if not value:
                raise ValueError(f"site {text!r}: the number of cases must be positive")
        else:
            raise ValueError(
                f"site {text!r}: {field!r} is neither a grade, a scanner profile nor a number of cases: the grade "
                f"must be HGG, LGG, mix or mix=F with F from 0 to 1, the profile one of {', '.join(SCANNER_PROFILES)}"
            )
        if kind in found:
            raise ValueError(f"site {text!r}: more than one {kind}")
        found[kind] = value
    share = found.get("grade", _share(SITE_GRADES.get(name, MIX), text))
    return SiteSpec(name, share, found.get("profile", REFERENCE), found.get("cases", 0))


def parse_sites(texts: Sequence[Union[str, SiteSpec]]) -> List[SiteSpec]:
    """The sites of ``texts``, each named once."""
    sites = [parse_site(t) for t in texts]
    names = [s.name for s in sites]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"sites named more than once: {', '.join(twice)}")
    if not sites:
        raise ValueError("no site given")
    return sites


def site_order(name: str) -> tuple:
    """Sort key of site names with their numbers in order: site-2 before site-10."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name))


def site_names(texts: Sequence[Union[str, SiteSpec]]) -> List[str]:
    return [s.name for s in parse_sites(texts)]
