"""Site names as inspectors say them, resolved forgivingly and honestly.

Exact name, then alias, then the normalised forms of both (full-width folded, spaces and a trailing 工地 /
站 dropped), then fuzzy matches (the query's characters in order, or close by edit similarity). One
match is the site; several are reported as candidates; none is reported as unknown.
"""

import difflib
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from tools.observations import Failure

_SUFFIXES = ("工地", "站")
_FUZZY_CUTOFF = 0.6
_MAX_CANDIDATES = 5


@dataclass(frozen=True)
class Site:
    id: int
    name: str
    region: str
    aliases: tuple[str, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


def normalise(name: str) -> str:
    """`name` without width, case, spaces and a trailing 工地 / 站: ` 济南 工地` and `济南` agree."""
    folded = "".join(unicodedata.normalize("NFKC", name).lower().split())
    for suffix in _SUFFIXES:
        if folded.endswith(suffix) and len(folded) > len(suffix):
            folded = folded.removesuffix(suffix)
    return folded


def _is_subsequence(short: str, long: str) -> bool:
    rest = iter(long)
    return all(char in rest for char in short)


def _fuzzy(query: str, sites: list[Site]) -> list[Site]:
    keyed = [(normalise(name), site) for site in sites for name in site.names]
    found = [site for key, site in keyed if _is_subsequence(query, key)]
    if not found:
        close = set(difflib.get_close_matches(query, [key for key, _ in keyed], n=10, cutoff=_FUZZY_CUTOFF))
        found = [site for key, site in keyed if key in close]
    return found


def unambiguous_names(sites: Iterable[Site]) -> frozenset[str]:
    """The normalised names and aliases that each name one site: a query normalising to one resolves to it."""
    owners: dict[str, set[int]] = {}
    for site in sites:
        for name in site.names:
            owners.setdefault(normalise(name), set()).add(site.id)
    return frozenset(form for form, ids in owners.items() if len(ids) == 1)


def resolve_site(query: str, sites: Iterable[Site]) -> Site:
    """The one site `query` names; raises Failure(unknown_site) or Failure(ambiguous_site)."""
    sites = list(sites)
    wanted = normalise(query)
    steps = (
        lambda: [site for site in sites if site.name == query.strip()],
        lambda: [site for site in sites if query.strip() in site.aliases],
        lambda: [site for site in sites if wanted in map(normalise, site.names)],
        lambda: _fuzzy(wanted, sites) if wanted else [],
    )
    for step in steps:
        found = list(dict.fromkeys(step()))
        if len(found) == 1:
            return found[0]
        if found:
            candidates = "、".join(sorted(site.name for site in found)[:_MAX_CANDIDATES])
            raise Failure("ambiguous_site", site=query, candidates=candidates)
    raise Failure("unknown_site", site=query)
