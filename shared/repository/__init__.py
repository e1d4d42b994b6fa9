"""State-changing operations on renders. Internal: only workers and operator scripts call these.

Every change is one compare-and-set ``UPDATE ... WHERE id = :id AND status = :expected`` (plus
a claim token where a lease is involved). A rowcount of zero means another process moved the
render first; nothing here reads a row, decides in Python and writes it back without such a
guard, so two deliveries of one message can never both win.

One package, one module per path through it: ``inserts`` (producers), ``starts`` (the start
claim), ``polls`` (the poller's batch statements), ``transitions`` (every other move), and
``queries``; ``table`` holds the column handles and the status guard they all use. Callers use
the names below, ``repository.claim_start(...)``; the outbox's delivery statements are in
``repository.events``.
"""

from shared.repository.inserts import insert_pending, insert_pending_many, out_name
from shared.repository.polls import (
    Completion,
    Failure,
    PollTarget,
    ProgressReading,
    finish_many,
    mark_stopped,
    next_poll_at,
    poll_targets,
    record_poll_failure,
    record_progress_many,
    rendering_ids,
    touch_stopping,
)
from shared.repository.queries import (
    HolderState,
    count_in_flight,
    holder_states,
    latest_bucket,
    stale_pending,
)
from shared.repository.starts import (
    Claim,
    claim_start,
    mark_rendering,
    release_claim,
    set_throttled_until,
)
from shared.repository.transitions import (
    attach_to_cancelled,
    cancel,
    fail,
    replay,
    restart_throttled,
    transition,
)

__all__ = [
    "Claim",
    "Completion",
    "Failure",
    "HolderState",
    "PollTarget",
    "ProgressReading",
    "attach_to_cancelled",
    "cancel",
    "claim_start",
    "count_in_flight",
    "fail",
    "finish_many",
    "holder_states",
    "insert_pending",
    "insert_pending_many",
    "latest_bucket",
    "mark_rendering",
    "mark_stopped",
    "next_poll_at",
    "out_name",
    "poll_targets",
    "record_poll_failure",
    "record_progress_many",
    "release_claim",
    "rendering_ids",
    "replay",
    "restart_throttled",
    "set_throttled_until",
    "stale_pending",
    "touch_stopping",
    "transition",
]
