"""(being written)"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runnet.emulator.gcp.server import GCPEmulator


def register(emu: GCPEmulator) -> None:
    """Add this kind's routes."""
