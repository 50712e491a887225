"""Parsing tasks as seed 000 sends them: a list of {operation_id, type, params} objects."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, Field, TypeAdapter, ValidationError, field_validator

from viewfinder.analysis.results import Task
from viewfinder.errors import InvalidInputError

MAX_TASKS = 64


class TaskIn(BaseModel):
    operation_id: str = Field(min_length=1, max_length=200)
    type: str
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("params", mode="before")
    @classmethod
    def _none_is_empty(cls, value: object) -> object:
        return {} if value is None else value

    def to_task(self) -> Task:
        return Task(self.operation_id, self.type, dict(self.params))


_TASK_LIST = TypeAdapter(list[TaskIn])


def parse_tasks_json(raw: str) -> list[Task]:
    """Tasks from a JSON string (the upload form's ``tasks_json``); InvalidInputError if bad."""
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"tasks_json is not valid JSON: {exc}") from None
    except RecursionError:
        raise InvalidInputError("tasks_json is nested too deeply") from None
    if not isinstance(parsed, list):
        raise InvalidInputError("tasks_json must be a JSON array of task objects")
    if len(parsed) > MAX_TASKS:
        raise InvalidInputError(f"tasks_json has {len(parsed)} tasks; at most {MAX_TASKS} allowed")
    try:
        return [t.to_task() for t in _TASK_LIST.validate_python(parsed)]
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise InvalidInputError(f"tasks_json is malformed: {problems}") from None
