"""Dramatiq middleware renderq adds to the broker (see ``worker.broker`` for the order)."""
