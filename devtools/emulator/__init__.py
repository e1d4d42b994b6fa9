"""The development Lambda emulator (see :mod:`devtools.emulator.core`)."""

from devtools.emulator.core import (
    REMOTION_VERSION,
    EmulatorServer,
    InvokeResult,
    LambdaEmulator,
    control,
    main,
)

__all__ = [
    "REMOTION_VERSION",
    "EmulatorServer",
    "InvokeResult",
    "LambdaEmulator",
    "control",
    "main",
]
