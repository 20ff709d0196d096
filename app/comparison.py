"""The lesson of the page: the user's token and the exchanged token side by side, claim by claim.

Each row says whether the exchange added, removed, changed or kept a claim, and explains
in one line what that means for the call to CPI. ``aud`` entries are labelled with whose
client they are, and the CPI role is marked present or missing in the exchanged scope.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from app.claims import EXPLAIN, FIRST, shown_value

__all__ = ["Comparison", "Entry", "Row", "Side", "compare"]

Change = Literal["added", "removed", "changed", "same", ""]
#: Claims holding seconds since the epoch: shown with their UTC time as well.
TIMES = frozenset({"iat", "exp", "nbf", "auth_time"})

_SCOPE = "XSUAA put the roles of your role collections here; CPI checks its role in it"
_JWT_BEARER = "the jwt-bearer URN: the new token was obtained by presenting yours (RFC 7523)"
_CLIENT = "the client that asked for the token: now the CPI binding's client"

#: Where the change itself is the lesson, the note says so; other rows use ``EXPLAIN``.
CHANGE_NOTES: dict[tuple[str, Change], str] = {
    ("iss", "changed"): "the IAS tenant issued your token; the subaccount's XSUAA issued the new one, "
                        "because CPI trusts only XSUAA tokens",
    ("aud", "changed"): "your token is for this app (and the subaccount XSUAA); the new one is for CPI",
    ("scope", "added"): _SCOPE,
    ("scope", "changed"): _SCOPE,
    ("grant_type", "added"): _JWT_BEARER,
    ("grant_type", "changed"): _JWT_BEARER,
    ("origin", "added"): "the IAS tenant as the subaccount's trust configuration names it",
    ("user_name", "added"): "the user as XSUAA names it (from the IAS token's user claims)",
    ("user_name", "same"): "carried over: CPI sees the same user",
    ("email", "same"): "carried over: CPI sees the same e-mail",
    ("given_name", "same"): "carried over from your token",
    ("family_name", "same"): "carried over from your token",
    ("ext_attr", "added"): "XSUAA's additions: the subaccount, its subdomain, the CPI service instance",
    ("xs.system.attributes", "added"): "the role collections XSUAA found for you (via your groups)",
    ("groups", "removed"): "IAS groups are not copied: XSUAA turned them into role collections and scopes",
    ("app_tid", "removed"): "the subaccount's tenant as IAS knows it; XSUAA names it zid",
    ("zid", "added"): "the subaccount's tenant (zone) that issued the new token; was app_tid",
    ("cid", "added"): _CLIENT,
    ("client_id", "added"): _CLIENT,
    ("cid", "changed"): _CLIENT,
    ("client_id", "changed"): _CLIENT,
    ("azp", "changed"): _CLIENT,
    ("iat", "changed"): "a new token, issued just now",
    ("exp", "changed"): "the new token's own lifetime, set by the CPI binding's token validity",
}


@dataclass(frozen=True)
class Entry:
    """One ``aud`` entry and whose client it names."""

    value: str
    owner: str


@dataclass(frozen=True)
class Side:
    """One token as the comparison needs it (``audiences`` as ``claims.token_view`` makes them)."""

    claims: Mapping[str, Any]
    audiences: Sequence[Mapping[str, str]]
    scopes: Sequence[str]


@dataclass(frozen=True)
class Row:
    name: str
    before: str | None  # the shown value in the user's token; None when absent
    after: str | None   # in the exchanged token
    change: Change      # "" when there is no exchanged token to compare with
    note: str


@dataclass(frozen=True)
class Comparison:
    rows: list[Row]
    audiences_before: list[Entry]
    audiences_after: list[Entry]
    scopes_before: list[str]
    scopes_after: list[str]
    cpi_scope: str | None        # the scope that carries the CPI role, when it is known
    cpi_role: str | None
    cpi_role_present: bool | None  # None when there is no exchanged token

    def is_cpi_role(self, scope: str) -> bool:
        """Whether ``scope`` is the one that carries the CPI role (marked in the table)."""
        if not self.cpi_role:
            return False
        return scope == self.cpi_scope if self.cpi_scope else scope.endswith("." + self.cpi_role)

    @property
    def counts(self) -> dict[str, int]:
        """How many rows the exchange added, removed and changed (for the summary line)."""
        return {kind: sum(r.change == kind for r in self.rows) for kind in ("added", "removed", "changed")}


def compare(before: Side, after: Side | None, *, cpi_role: str | None, cpi_scope: str | None,
            role_present: bool | None) -> Comparison:
    """The rows of both tokens: the claims that matter first, then the rest alphabetically."""
    old, new = before.claims, after.claims if after else None
    names = [n for n in FIRST if n in old or (new and n in new)]
    names += sorted({*old, *(new or {})} - set(FIRST))
    return Comparison(rows=[_row(name, old, new) for name in names],
                      audiences_before=_entries(before.audiences),
                      audiences_after=_entries(after.audiences) if after else [],
                      scopes_before=list(before.scopes), scopes_after=list(after.scopes) if after else [],
                      cpi_scope=cpi_scope, cpi_role=cpi_role,
                      cpi_role_present=None if after is None else role_present)


def _row(name: str, before: Mapping[str, Any], after: Mapping[str, Any] | None) -> Row:
    change = _change(name, before, after)
    return Row(name=name, before=_shown(name, before), after=_shown(name, after) if after else None,
               change=change, note=CHANGE_NOTES.get((name, change)) or EXPLAIN.get(name, ""))


def _change(name: str, before: Mapping[str, Any], after: Mapping[str, Any] | None) -> Change:
    if after is None:
        return ""
    if name not in before:
        return "added"
    if name not in after:
        return "removed"
    return "same" if before[name] == after[name] else "changed"


def _shown(name: str, claims: Mapping[str, Any] | None) -> str | None:
    if claims is None or name not in claims:
        return None
    value = claims[name]
    if name in TIMES and isinstance(value, int | float) and not isinstance(value, bool):
        try:
            when = datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        except (OverflowError, OSError, ValueError):
            return shown_value(value)
        return f"{value} ({when})"
    return shown_value(value)


def _entries(audiences: Sequence[Mapping[str, str]]) -> list[Entry]:
    return [Entry(a["value"], a["owner"]) for a in audiences]
