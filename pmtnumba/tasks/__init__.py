"""Task losses with their hand-derived gradients, and the registry the trainer builds them from."""

from .base import Batch, Task, TaskContext, TaskOutput
from .align_uniform import AlignUniformTask, align_uniform_loss_grad
from .bpr import BPRTask
from .links import CategoryTask, CoBuyTask, CoViewTask, SocialTask
from .rating import RatingTask, rating_loss_grad
from .triplet import triplet_loss_grad, triplet_slots

TASKS: dict[str, type[Task]] = {
    "bpr": BPRTask,
    "social": SocialTask,
    "category": CategoryTask,
    "coview": CoViewTask,
    "cobuy": CoBuyTask,
    "align_uniform": AlignUniformTask,
    "rating": RatingTask,
}

MAIN_TASK = "bpr"

# The paper's task set per data set (SPEC section 2) and sensible sets for the extras. Only the
# tasks registered above are used; the rest are filled in as their kernels land.
PAPER_TASKS = {
    "epinion": ["bpr", "social", "category"],
    "videogame": ["bpr", "coview", "cobuy"],
    "office": ["bpr", "align_uniform", "rating"],
    "ciao": ["bpr", "social", "category"],
    "lastfm": ["bpr", "social"],
    "filmtrust": ["bpr", "social"],
    "grocery": ["bpr", "coview", "cobuy"],
}


def default_tasks(dataset_name: str) -> list[str]:
    """The paper's task set for a data set, restricted to the tasks this build has."""
    return [t for t in PAPER_TASKS.get(dataset_name, ["bpr"]) if t in TASKS]


def build_tasks(names, ctx: TaskContext, options: dict | None = None) -> list[Task]:
    """Instantiate tasks by name; the main task ``bpr`` must be present and comes first."""
    names = list(dict.fromkeys(names))
    unknown = [n for n in names if n not in TASKS]
    if unknown:
        raise ValueError(f"unknown task(s) {', '.join(unknown)}; available: {', '.join(sorted(TASKS))}")
    if MAIN_TASK not in names:
        raise ValueError(f"the main task {MAIN_TASK!r} must be among --tasks")
    names.remove(MAIN_TASK)
    names.insert(0, MAIN_TASK)
    options = options or {}
    return [TASKS[n](ctx, stream=k, **options.get(n, {})) for k, n in enumerate(names)]


__all__ = [
    "Batch", "Task", "TaskContext", "TaskOutput", "BPRTask", "TASKS", "MAIN_TASK", "PAPER_TASKS",
    "default_tasks", "build_tasks", "triplet_loss_grad", "triplet_slots", "SocialTask", "CategoryTask",
    "CoViewTask", "CoBuyTask", "AlignUniformTask", "RatingTask", "align_uniform_loss_grad", "rating_loss_grad",
]
