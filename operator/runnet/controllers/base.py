"""What every controller shares: the object as a controller sees it, and parsing a spec into its model.

Parse errors read like the CRD schema's own messages (the same words for the same shapes), so a
spec that slipped past the schema (an older CRD, a field set by a webhook) still gets one sentence
naming the field, never a regular expression.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from runnet.api.common import expectation

M = TypeVar("M", bound=BaseModel)


@dataclass
class Object:
    """The parts of a custom resource a controller needs."""

    namespace: str
    name: str
    uid: str
    generation: int | None
    spec: dict[str, Any]
    status: dict[str, Any]

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def field_path(loc: tuple[int | str, ...]) -> str:
    out = "spec"
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def error_sentence(error: ErrorDetails) -> str:
    """One pydantic error as the schema would say it."""
    where = field_path(error["loc"])
    ctx = error.get("ctx") or {}
    kind = error["type"]
    if kind == "string_pattern_mismatch":
        return f"{where} must be {expectation(str(ctx.get('pattern', '')))}"
    if kind == "missing":
        return f"{where} is required"
    if kind == "enum":
        return f"{where} must be one of {ctx.get('expected', '')}"
    if kind in ("greater_than_equal", "less_than_equal"):
        bound = ctx.get("ge", ctx.get("le"))
        return f"{where} must be {'at least' if kind == 'greater_than_equal' else 'at most'} {bound}"
    if kind in ("string_too_long", "too_long", "too_short"):
        return f"{where}: {error['msg'].lower()}"
    return f"{where}: {error['msg']}"


def parse_spec(model: type[M], obj: Object) -> M | str:
    """The spec as its model, or the sentence saying what is wrong with it."""
    try:
        return model.model_validate(obj.spec)
    except ValidationError as exc:
        return error_sentence(exc.errors()[0])
