"""Benchmark tasks. ``make_task(name, **params)`` builds one; ``TASKS`` lists them."""

from __future__ import annotations

import importlib
import inspect

from tasks.base import (BatchedEnv, ControlTask, DirectTask, Evaluation, TaskBase, Transitions,
                        is_control_task)

# name -> "module:Class"; imported lazily so that listing tasks stays cheap.
TASKS: dict[str, str] = {
    "sphere": "tasks.functions:Sphere",
    "rastrigin": "tasks.functions:Rastrigin",
    "arm": "tasks.functions:Arm",
    "hard_maze": "tasks.maze:HardMaze",
    "medium_maze": "tasks.maze:MediumMaze",
    "ant_omni": "tasks.locomotion:AntOmni",
    "anttrap_omni": "tasks.locomotion:AntTrapOmni",
    "humanoid_omni": "tasks.locomotion:HumanoidOmni",
    "ant_uni": "tasks.locomotion:AntUni",
    "walker2d_uni": "tasks.locomotion:Walker2dUni",
    "halfcheetah_uni": "tasks.locomotion:HalfCheetahUni",
    "hopper_uni": "tasks.locomotion:HopperUni",
    "humanoid_uni": "tasks.locomotion:HumanoidUni",
    "gym": "tasks.gym_task:GymTask",
}


def task_class(name: str) -> type:
    if name not in TASKS:
        raise ValueError(f"task.name: unknown task {name!r}; accepted: {', '.join(sorted(TASKS))}")
    module, cls = TASKS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def task_defaults(name: str) -> dict:
    """The task's parameters with their default values (what ``config.yaml`` records)."""
    sig = inspect.signature(task_class(name).__init__)
    return {
        p.name: p.default
        for p in sig.parameters.values()
        if p.name != "self" and p.default is not inspect.Parameter.empty
    }


def make_task(name: str, **params):
    """Build task ``name``; unknown parameters raise a one-line ``ValueError``."""
    cls = task_class(name)
    accepted = task_defaults(name)
    for key in params:
        if key not in accepted:
            raise ValueError(
                f"task.{key}: unknown parameter for task {name!r}; accepted: "
                f"{', '.join(sorted(accepted)) or 'none'}"
            )
    return cls(**params)


__all__ = [
    "TASKS", "BatchedEnv", "ControlTask", "DirectTask", "Evaluation", "TaskBase", "Transitions",
    "is_control_task", "make_task", "task_class", "task_defaults",
]
