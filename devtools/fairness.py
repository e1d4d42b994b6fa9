"""Fairness figures over finished renders: who held how much Lambda budget, and when.

Used by the capacity tests and the benchmark's capacity section, so both compute the same
numbers: a *grant* is one render's hold on the budget (its functions from start to end); a
user's share over a window is the budget-seconds of the grants that *started* in it (grants
started before it are the head start of whoever was alone, not fairness), optionally only
those held before the window ends.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from shared.models import Render
from shared.render_plan import chunking_for


@dataclass(frozen=True, slots=True)
class Grant:
    user: str
    created_s: float
    started_s: float
    ended_s: float
    functions: int

    @property
    def held_s(self) -> float:
        return max(0.0, self.ended_s - self.started_s)


def grants(rows: Iterable[Render], budget: int | None = None) -> list[Grant]:
    """Grants of the renders that started and ended (epoch seconds), functions as admitted."""
    out = []
    for r in rows:
        if r.started_at is None or r.completed_at is None:
            continue
        out.append(
            Grant(
                r.user_id,
                r.created_at.timestamp(),
                r.started_at.timestamp(),
                r.completed_at.timestamp(),
                chunking_for(r.duration_in_frames, budget).functions,
            )
        )
    return sorted(out, key=lambda g: g.started_s)


def backlogged_window(all_grants: Sequence[Grant], users: Iterable[str]) -> tuple[float, float]:
    """From the moment every one of ``users`` has had a render started (so each is in the
    line) until the first of them starts its last one: the time in which all of them had
    renders waiting and competed for every free slot."""
    wanted = set(users)
    first_started: dict[str, float] = defaultdict(lambda: float("inf"))
    last_started: dict[str, float] = defaultdict(float)
    for g in all_grants:
        if g.user in wanted:
            first_started[g.user] = min(first_started[g.user], g.started_s)
            last_started[g.user] = max(last_started[g.user], g.started_s)
    return max(first_started[u] for u in wanted), min(last_started[u] for u in wanted)


def budget_seconds(
    all_grants: Sequence[Grant], start_s: float, end_s: float, *, clip: bool = False
) -> dict[str, float]:
    """Per user, functions x seconds held by grants started in [start_s, end_s]; with
    ``clip``, only the seconds held before ``end_s``: the budget-seconds *over the window*. A
    grant started just before the end otherwise adds its whole hold, most of it after the
    window, so a window of a few renders per user measures where its end fell."""
    totals: dict[str, float] = defaultdict(float)
    for g in all_grants:
        if start_s <= g.started_s <= end_s:
            held = min(g.ended_s, end_s) - g.started_s if clip else g.held_s
            totals[g.user] += g.functions * max(held, 1e-3)
    return dict(totals)


def jain_index(values: Iterable[float]) -> float:
    """Jain's fairness index: 1.0 when all equal, 1/n when one has everything."""
    xs = list(values)
    if not xs or not any(xs):
        return 1.0
    return sum(xs) ** 2 / (len(xs) * sum(x * x for x in xs))


def share_errors(shares: Mapping[str, float], weights: Mapping[str, float]) -> dict[str, float]:
    """Per user, |share - weight share| / weight share (0.1 = within 10 % of its weight)."""
    total = sum(shares.get(u, 0.0) for u in weights)
    weight_total = sum(weights.values())
    errors = {}
    for user, weight in weights.items():
        expected = weight / weight_total
        actual = shares.get(user, 0.0) / total if total else 0.0
        errors[user] = abs(actual - expected) / expected
    return errors


def starts_before(
    all_grants: Sequence[Grant], user: str, others: str, same_batch_s: float = 0.1
) -> int:
    """How many of ``others``' renders started after ``user``'s first render was created and
    before ``user``'s first one started (the head start ``others`` kept). Starts within
    ``same_batch_s`` of that first start are not counted: one release admits several renders
    in one call, in fair order, and their Lambda starts then race in worker threads."""
    mine = [g for g in all_grants if g.user == user]
    created = min(g.created_s for g in mine)
    first = min(g.started_s for g in mine)
    return sum(
        1 for g in all_grants if g.user == others and created < g.started_s < first - same_batch_s
    )
