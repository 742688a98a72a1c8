"""The ARC self-edit parser: exact outcome for well-formed, forgiving and malformed inputs."""

import json

import pytest

from seal.domains.arc.selfedit import (
    ArcSelfEdit,
    all_configurations,
    parse_self_edit,
    self_edit_prompt,
    to_json,
)
from seal.domains.arc.tasks import ArcTask, Example

GOOD = {
    "data_generation": {"use_basic_augmentations": True, "use_size_augmentations": False,
                        "use_chain_augmentations": True, "use_repeat_augmentations": False},
    "training": {"strategy": "train_using_output_tokens", "learning_rate": 1e-4, "num_train_epochs": 3},
}
GOOD_EDIT = ArcSelfEdit(True, False, True, False, "output", 1e-4, 3)


def variant(gen=None, train=None, **top):
    d = json.loads(json.dumps(GOOD))
    d["data_generation"].update(gen or {})
    d["training"].update(train or {})
    d.update(top)
    return json.dumps(d)


def test_good_edit_and_roundtrip():
    r = parse_self_edit(json.dumps(GOOD))
    assert (r.edit, r.reason, r.warnings) == (GOOD_EDIT, None, [])
    assert GOOD_EDIT.groups == frozenset({"basic", "chain"})
    for edit in all_configurations():
        again = parse_self_edit(to_json(edit))
        assert (again.edit, again.warnings) == (edit, [])


FAIL_CASES = [
    ("", "empty self-edit"),
    ("   \n", "empty self-edit"),
    ("I would use rotations and a small learning rate.", "no JSON object found"),
    ('{"data_generation": {"use_basic_augmentations": true, "use_si', "invalid JSON: "),
    ("{not json}", "invalid JSON: Expecting property name enclosed in double quotes at char 1"),
    ('{"foo": 1}', "JSON object has no 'data_generation' or 'training' section"),
    ('[1, 2]', "no JSON object found"),
    (json.dumps({"training": GOOD["training"]}), "missing section 'data_generation'"),
    (json.dumps({"data_generation": GOOD["data_generation"]}), "missing section 'training'"),
    (json.dumps({"data_generation": [1], "training": GOOD["training"]}), "'data_generation' must be an object"),
    (variant(gen={"use_size_augmentations": "maybe"}),
     "data_generation.use_size_augmentations must be a boolean, got 'maybe'"),
    (variant(gen={"use_basic_augmentations": 2}),
     "data_generation.use_basic_augmentations must be a boolean, got 2"),
    (variant(gen={"use_basic_augmentations": None}),
     "data_generation.use_basic_augmentations must be a boolean, got None"),
    (variant(train={"strategy": "train_using_input_tokens"}), "unknown training.strategy 'train_using_input_tokens'"),
    (variant(train={"strategy": 1}), "training.strategy must be a string, got 1"),
    (variant(train={"learning_rate": "fast"}), "training.learning_rate must be a number, got 'fast'"),
    (variant(train={"learning_rate": True}), "training.learning_rate must be a number, got True"),
    (variant(train={"learning_rate": [1e-4]}), "training.learning_rate must be a number, got [0.0001]"),
    (variant(train={"learning_rate": float("nan")}), "training.learning_rate must be finite, got nan"),
    (variant(train={"learning_rate": "inf"}), "training.learning_rate must be finite, got 'inf'"),
    (variant(train={"num_train_epochs": float("inf")}), "training.num_train_epochs must be finite, got inf"),
    (variant(train={"num_train_epochs": 2.5}), "training.num_train_epochs must be a whole number, got 2.5"),
    ('{"data_generation": {}, "training": {"strategy": "all", "learning_rate": 1e-4}}',
     "missing training.num_train_epochs"),
]


@pytest.mark.parametrize("text, reason", FAIL_CASES)
def test_malformed_gives_reason_never_raises(text, reason):
    r = parse_self_edit(text)
    assert r.edit is None
    assert r.reason.startswith(reason), r.reason


def test_non_string_input():
    assert parse_self_edit(None).reason == "empty self-edit"  # type: ignore[arg-type]


OK_CASES = [
    # fenced JSON with prose around it
    ("Here is my plan:\n```json\n" + json.dumps(GOOD) + "\n```\nGood luck!", GOOD_EDIT, []),
    # trailing text and a leading brace-free sentence
    ("Sure. " + json.dumps(GOOD) + " That should work {really}.", GOOD_EDIT, []),
    # a JSON object without sections before the real one
    ('{"note": "draft"} ' + json.dumps(GOOD), GOOD_EDIT, []),
    # forgiving booleans and strategy spelling
    (variant(gen={"use_basic_augmentations": "Yes", "use_chain_augmentations": 1, "use_size_augmentations": "false"},
             train={"strategy": " OUTPUT ", "learning_rate": "1e-4", "num_train_epochs": 3.0}), GOOD_EDIT, []),
    (variant(train={"strategy": "train_using_all_tokens"}),
     ArcSelfEdit(True, False, True, False, "all", 1e-4, 3), []),
    # unknown keys: warnings, ignored
    (variant(gen={"use_colour_augmentations": True}, train={"batch_size": 4}, comment="hi"), GOOD_EDIT,
     ["ignored unknown key 'comment'", "ignored unknown key 'data_generation.use_colour_augmentations'",
      "ignored unknown key 'training.batch_size'"]),
    # clamping
    (variant(train={"learning_rate": 5.0}), ArcSelfEdit(True, False, True, False, "output", 1e-2, 3),
     ["training.learning_rate 5 out of range [1e-05, 0.01], clamped to 0.01"]),
    (variant(train={"learning_rate": -1e-3}), ArcSelfEdit(True, False, True, False, "output", 1e-5, 3),
     ["training.learning_rate -0.001 out of range [1e-05, 0.01], clamped to 1e-05"]),
    (variant(train={"num_train_epochs": -2}), ArcSelfEdit(True, False, True, False, "output", 1e-4, 1),
     ["training.num_train_epochs -2 out of range [1, 10], clamped to 1"]),
    (variant(train={"num_train_epochs": 0}), ArcSelfEdit(True, False, True, False, "output", 1e-4, 1),
     ["training.num_train_epochs 0 out of range [1, 10], clamped to 1"]),
    (variant(train={"num_train_epochs": 500}), ArcSelfEdit(True, False, True, False, "output", 1e-4, 10),
     ["training.num_train_epochs 500 out of range [1, 10], clamped to 10"]),
    # missing flag taken as false
    ('{"data_generation": {"use_basic_augmentations": true}, "training": {"strategy": "train_using_all_tokens",'
     ' "learning_rate": 0.001, "num_train_epochs": 2}}', ArcSelfEdit(True, False, False, False, "all", 1e-3, 2),
     ["data_generation.use_size_augmentations missing, taken as false",
      "data_generation.use_chain_augmentations missing, taken as false",
      "data_generation.use_repeat_augmentations missing, taken as false"]),
    # repaired: Python booleans and a trailing comma
    ('{"data_generation": {"use_basic_augmentations": True, "use_size_augmentations": False, '
     '"use_chain_augmentations": True, "use_repeat_augmentations": False,}, "training": {"strategy": '
     '"train_using_output_tokens", "learning_rate": 0.0001, "num_train_epochs": 3}}', GOOD_EDIT,
     ["repaired JSON (trailing commas / Python booleans)"]),
]


@pytest.mark.parametrize("text, edit, warnings", OK_CASES)
def test_forgiving_cases(text, edit, warnings):
    r = parse_self_edit(text)
    assert r.reason is None
    assert r.edit == edit
    assert r.warnings == warnings


def test_custom_ranges():
    r = parse_self_edit(variant(train={"learning_rate": 1e-3, "num_train_epochs": 4}),
                        lr_range=(1e-5, 5e-4), max_epochs=2)
    assert (r.edit.learning_rate, r.edit.epochs) == (5e-4, 2)
    assert len(r.warnings) == 2


def test_dataclass_validation():
    with pytest.raises(ValueError):
        ArcSelfEdit(True, False, False, False, "input", 1e-4, 1)
    with pytest.raises(ValueError):
        ArcSelfEdit(True, False, False, False, "all", float("nan"), 1)
    with pytest.raises(ValueError):
        ArcSelfEdit(True, False, False, False, "all", 1e-4, 0)


def test_all_configurations_grid():
    configs = all_configurations()
    assert len(configs) == 48 == len(set(configs))
    assert configs[0] == ArcSelfEdit(False, False, False, False, "output", 1e-4, 1)
    assert configs[-1] == ArcSelfEdit(True, True, True, True, "all", 1e-3, 3)
    assert len(all_configurations(learning_rates=(1e-4,), epochs=(2,), loss_on=("all",))) == 6


def test_to_json_canonical():
    assert json.loads(to_json(GOOD_EDIT)) == GOOD


def test_self_edit_prompt_lists_options_and_task():
    task = ArcTask("p", (Example(((1, 2),), ((2, 1),)),), (((3, 4),),))
    p = self_edit_prompt(task)
    assert "Input:\n12\nOutput:\n21\n" in p
    assert "34" not in p  # the test input is not shown
    for key in ("use_basic_augmentations", "use_size_augmentations", "use_chain_augmentations",
                "use_repeat_augmentations", "train_using_output_tokens", "train_using_all_tokens",
                "learning_rate", "num_train_epochs"):
        assert key in p
    assert parse_self_edit(p.split("For example:\n", 1)[1]).edit == ArcSelfEdit(
        True, False, False, False, "output", 1e-4, 3)
