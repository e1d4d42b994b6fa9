"""renderq's exceptions derive from one root, ``RenderqError``, so a caller can catch all of
renderq's own failures in one clause. Public errors also keep the standard base a caller
would expect (``RenderNotFound`` is a ``LookupError``, ``RenderLimitExceeded`` a
``ValueError``). Errors of one module live there (``worker.lambda_errors.LambdaError``...);
this module holds those both producers and workers raise."""

from __future__ import annotations


class RenderqError(Exception):
    """Base class for renderq's own errors."""


class RenderNotFound(RenderqError, LookupError):
    def __init__(self, render_id: str) -> None:
        self.render_id = render_id
        super().__init__(f"render {render_id!r} does not exist")


class IllegalTransition(RenderqError):
    """A state change the state machine does not allow, or one that lost a race.

    ``actual`` is the status found in the database (None when the row does not exist), so a
    caller that expects races can tell "someone else already moved it" from a bug.
    """

    def __init__(
        self, render_id: str, from_status: str, to_status: str, actual: str | None = None
    ) -> None:
        self.render_id = render_id
        self.from_status = from_status
        self.to_status = to_status
        self.actual = actual
        detail = f" (it is {actual})" if actual is not None else ""
        super().__init__(f"render {render_id}: illegal move {from_status} -> {to_status}{detail}")
