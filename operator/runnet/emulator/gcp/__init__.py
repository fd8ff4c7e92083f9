"""An in-memory Compute Engine v1 + Cloud Run Admin v1/v2 control plane that speaks the real wire protocol."""

from runnet.emulator.gcp.config import EmulatorConfig, Fault
from runnet.emulator.gcp.errors import GCPError
from runnet.emulator.gcp.request_log import RequestLog
from runnet.emulator.gcp.server import EmulatorThread, GCPEmulator

__all__ = ["EmulatorConfig", "EmulatorThread", "Fault", "GCPEmulator", "GCPError", "RequestLog"]
