"""The type of a message as a worker holds it.

Dramatiq hands middleware a ``MessageProxy`` (the consumed message with its broker state), and
``CurrentMessage`` is typed as the plain ``Message`` it wraps; renderq's code reads only the
fields both have (``message_id``, ``options``, ``args``...), so it accepts either.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from dramatiq import Message
from dramatiq.broker import MessageProxy

Delivery: TypeAlias = Message[Any] | MessageProxy
