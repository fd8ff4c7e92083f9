"""Logging for ``runnet run``: text for people, or one JSON object a line for log pipelines.

The JSON formatter is kopf's own (python-json-logger underneath), which knows the object a handler
works on from the ``k8s_ref`` kopf puts on its records; runnet adds ``namespace`` and ``name`` at
the top level, where log pipelines index them, and names the fields as most pipelines expect.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from kopf._core.actions.loggers import ObjectJsonFormatter

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
FORMATS = ("text", "json")


class JsonFormatter(ObjectJsonFormatter):
    """``{"time", "level", "logger", "message", "namespace", "name", "object", ...}`` on one line."""

    def __init__(self) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",
            refkey="object",
        )

    def add_fields(self, log_record: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        super().add_fields(log_record, record, message_dict)
        log_record.pop("severity", None)  # kopf's copy of the level
        ref = getattr(record, "k8s_ref", None)
        if isinstance(ref, dict):
            if ref.get("namespace"):
                log_record["namespace"] = ref["namespace"]
            if ref.get("name"):
                log_record["name"] = ref["name"]


def configure(log_format: str, level: int = logging.INFO) -> None:
    """Send every log record (warnings included) to stderr in ``log_format``."""
    handler = logging.StreamHandler(sys.stderr)
    formatter: logging.Formatter = JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.captureWarnings(True)
