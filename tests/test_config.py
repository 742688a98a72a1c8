"""Tests for seal.config: defaults, overrides, validation errors naming the field, files, presets."""

from __future__ import annotations

import json

import pytest

from seal.config import DEFAULT_MODEL, ConfigError, SealConfig


def test_defaults_are_valid():
    cfg = SealConfig()
    assert cfg == SealConfig.preset("cpu")
    assert cfg.model.name == DEFAULT_MODEL == "smollm2-135m"
    assert (cfg.lora.rank, cfg.lora.alpha) == (16, 32.0)
    assert cfg.lora.targets == ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    assert (cfg.inner_loop.epochs, cfg.inner_loop.lr, cfg.inner_loop.engine) == (5, 1e-3, "auto")
    # the measured winners on the default model (README Results): rewrites, the accuracy+likelihood reward
    assert (cfg.self_edit.format, cfg.self_edit.include_passage) == ("rewrite", True)
    assert (cfg.rest_em.reward, cfg.rest_em.samples, cfg.rest_em.contexts, cfg.rest_em.rounds) == ("auto", 4, 8, 2)
    paper = SealConfig.preset("gpu-7b")  # the paper's setting keeps the paper's format and reward
    assert (paper.self_edit.format, paper.rest_em.reward) == ("implications", "accuracy")
    assert (cfg.eval.grader, cfg.eval.answer_tokens) == ("lexical", 24)
    assert SealConfig.from_dict(cfg.to_dict()) == cfg


def test_override_types():
    base = SealConfig()
    cfg = base.override(["inner_loop.lr=5e-4", "lora.rank=8", "self_edit.include_passage=false",
                         "model.name=Qwen/Qwen2.5-7B", "eval.judge_url=http://x:1/v1", "lora.alpha=8"])
    assert cfg.inner_loop.lr == 5e-4 and type(cfg.inner_loop.lr) is float
    assert cfg.lora.rank == 8 and type(cfg.lora.rank) is int
    assert cfg.self_edit.include_passage is False
    assert cfg.model.name == "Qwen/Qwen2.5-7B"
    assert cfg.eval.judge_url == "http://x:1/v1"
    assert cfg.lora.alpha == 8
    assert base == SealConfig()  # override returns a new config
    assert base.override([]) == base
    assert cfg.override(['model.name="123"']).model.name == "123"  # JSON string stays a string
    assert SealConfig().override(['lora.targets=["q_proj"]']).lora.targets == ("q_proj",)


@pytest.mark.parametrize("item", ["lora.rank", "rank=8", "=8", "lora.rank 8"])
def test_override_bad_syntax(item):
    with pytest.raises(ConfigError, match=rf"^override '{item}' must look like section\.key=value$"):
        SealConfig().override([item])


@pytest.mark.parametrize(("item", "field"), [
    ("lora.ranks=8", "lora.ranks"),
    ("loras.rank=8", "loras.rank"),
    ("inner_loop.lr.x=1", "inner_loop.lr.x"),
])
def test_override_unknown_field(item, field):
    with pytest.raises(ConfigError, match=rf"^override '{item}': unknown field {field}$"):
        SealConfig().override([item])


@pytest.mark.parametrize(("item", "message"), [
    ("inner_loop.lr=2", r"^inner_loop\.lr must be in \(0, 1\)$"),
    ("inner_loop.lr=0", r"^inner_loop\.lr must be in \(0, 1\)$"),
    ("inner_loop.lr=NaN", r"^inner_loop\.lr must be in \(0, 1\)$"),
    ("inner_loop.epochs=0", r"^inner_loop\.epochs must be >= 1$"),
    ("lora.rank=0", r"^lora\.rank must be >= 1$"),
    ("lora.alpha=-1", r"^lora\.alpha must be > 0$"),
    ("lora.targets=[]", r"^lora\.targets must name at least one layer$"),
    ("inner_loop.engine=foo", r"^inner_loop\.engine: 'foo' is not auto, batched or sequential$"),
    ("self_edit.format=bogus", r"^self_edit\.format: 'bogus' is not one of passage, implications, rewrite, "
                               r"self-qa$"),
    ("self_edit.top_p=0", r"^self_edit\.top_p must be in \(0, 1\]$"),
    ("model.dtype=int8", r"^model\.dtype: unknown 'int8'$"),
    ("model.name=", r"^model\.name must not be empty$"),
    ("eval.grader=gpt", r"^eval\.grader: 'gpt'$"),
    ("eval.answer_tokens=0", r"^eval\.answer_tokens must be in \[1, 512\]$"),
    ("rest_em.selection=worst", r"^rest_em\.selection: 'worst'$"),
])
def test_override_invalid_value(item, message):
    with pytest.raises(ConfigError, match=message):
        SealConfig().override([item])


@pytest.mark.parametrize("item", ["lora.rank=abc", "inner_loop.lr=fast", "inner_loop.epochs=[1]"])
def test_override_wrong_type_is_a_config_error(item):
    with pytest.raises(ConfigError, match=item.split("=")[0].replace(".", r"\.")):
        SealConfig().override([item])


TOML = """
[model]
name = "my/model"
dtype = "float32"

[lora]
rank = 4
alpha = 8.0
targets = ["q_proj", "v_proj"]

[inner_loop]
epochs = 3
lr = 0.0005

[self_edit]
format = "self-qa"
include_passage = false
"""


def test_from_file_toml(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(TOML, encoding="utf-8")
    cfg = SealConfig.from_file(path)
    assert cfg.model.name == "my/model" and cfg.model.dtype == "float32"
    assert (cfg.lora.rank, cfg.lora.alpha, cfg.lora.targets) == (4, 8.0, ("q_proj", "v_proj"))
    assert (cfg.inner_loop.epochs, cfg.inner_loop.lr) == (3, 5e-4)
    assert (cfg.self_edit.format, cfg.self_edit.include_passage) == ("self-qa", False)
    assert cfg.eval == SealConfig().eval  # untouched sections keep their defaults
    # round trip through to_dict -> TOML -> from_file
    again = tmp_path / "again.toml"
    again.write_text(_to_toml(cfg.to_dict()), encoding="utf-8")
    assert SealConfig.from_file(again) == cfg
    assert SealConfig.from_file(again).to_dict() == cfg.to_dict()


def test_from_file_json_round_trip(tmp_path):
    cfg = SealConfig.preset("gpu-7b").override(["inner_loop.epochs=7", "eval.judge_model=gpt-4.1"])
    path = tmp_path / "c.json"
    path.write_text(json.dumps(cfg.to_dict()), encoding="utf-8")
    loaded = SealConfig.from_file(path)
    assert loaded == cfg
    assert loaded.to_dict() == cfg.to_dict()
    assert loaded.inner_loop.epochs == 7 and loaded.lora.targets == cfg.lora.targets


@pytest.mark.parametrize(("text", "message"), [
    ("[loras]\nrank = 3\n", r"^unknown config section\(s\): loras$"),
    ("[lora]\nranks = 3\n", r"^unknown key\(s\) in \[lora\]: ranks$"),
    ("lora = 3\n", r"^config section 'lora' must be a table$"),
    ("[lora]\nrank = 0\n", r"^lora\.rank must be >= 1$"),
])
def test_from_file_unknown_section_or_key(tmp_path, text, message):
    path = tmp_path / "c.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        SealConfig.from_file(path)


def test_from_file_missing(tmp_path):
    with pytest.raises(ConfigError, match=r"^config file not found: .*nope\.toml$"):
        SealConfig.from_file(tmp_path / "nope.toml")


@pytest.mark.parametrize(("name", "text"), [("bad.toml", "[lora\nrank = 3\n"), ("bad.json", '{"lora": ')])
def test_from_file_syntax_error_is_a_config_error(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=name.replace(".", r"\.")):
        SealConfig.from_file(path)


def test_preset_gpu_7b():
    cfg = SealConfig.preset("gpu-7b")
    assert (cfg.lora.rank, cfg.lora.alpha, cfg.inner_loop.epochs) == (32, 64.0, 10)
    assert cfg.inner_loop.lr == 1e-3
    assert cfg.model.name == "Qwen/Qwen2.5-7B" and cfg.model.dtype == "bfloat16"
    assert cfg.eval.answer_tokens == 64
    assert (cfg.rest_em.contexts, cfg.rest_em.samples, cfg.rest_em.repeats) == (50, 5, 3)


def test_unknown_preset():
    with pytest.raises(ConfigError, match=r"^unknown preset 'tpu'"):
        SealConfig.preset("tpu")


def _to_toml(data: dict) -> str:
    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        raise TypeError(v)

    lines = []
    for section, fields in data.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {value(v)}" for k, v in fields.items()]
        lines.append("")
    return "\n".join(lines)
