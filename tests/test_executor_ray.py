"""``--executor ray`` on a real local Ray instance (``num_cpus=2``, 2 actors, the tiny model saved on disk):
the same records, selections and policy as the local executor; an actor killed mid-round; a pass that fails
twice; the driver killed mid-round and resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ray = pytest.importorskip("ray")

from seal.config import SealConfig  # noqa: E402
from seal.domains.knowledge import KnowledgeDomain, load_passages  # noqa: E402
from seal.engine import Seal  # noqa: E402
from seal.executor import LocalExecutor  # noqa: E402
from seal.io import read_jsonl  # noqa: E402
from seal.rest_em import train  # noqa: E402
from tests import test_rest_em  # noqa: E402
from tests.conftest import SAMPLES  # noqa: E402
from tests.test_rest_em import HashGrader  # noqa: E402

ray.cloudpickle.register_pickle_by_value(test_rest_em)  # the actors get HashGrader's code, not an import
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _cfg(model_dir: Path, **rest) -> SealConfig:
    r = {"rounds": 2, "contexts": 2, "samples": 2, "repeats": 1, "seed": 0, "contexts_per_pass": 1,
         "policy_epochs": 2, "policy_lr": 5e-2, **rest}
    return SealConfig.from_dict({
        "model": {"name": str(model_dir), "threads": 1}, "lora": {"rank": 4, "alpha": 8},
        "inner_loop": {"epochs": 1, "lr": 5e-2, "batch_tokens": 64, "engine": "sequential"},
        "self_edit": {"max_new_tokens": 16, "temperature": 1.0}, "eval": {"answer_tokens": 6}, "rest_em": r})


@pytest.fixture(scope="module")
def ray_local():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _run(cfg: SealConfig, run_dir: Path, make_executor=None, domain=None):
    seal = Seal.load(cfg, slots=1 + cfg.rest_em.samples, grader=HashGrader())
    dom = domain or KnowledgeDomain.from_config(cfg)
    ex = make_executor(seal, dom) if make_executor else LocalExecutor(seal, dom)
    try:
        train(seal, dom, load_passages(SAMPLES), run_dir, fmt="implications", executor=ex)
    finally:
        if make_executor:
            ex.close()
    return ex


def _outputs(run_dir: Path):
    recs = sorted(read_jsonl(run_dir / "samples.jsonl"), key=lambda r: (r["round"], r["context"], r["sample"]))
    texts = [sorted((r["context"], r["sample"], r["text"]) for r in read_jsonl(run_dir / f"round-{i}" /
                                                                             "self_edits.jsonl")) for i in (1, 2)]
    selected = [json.loads((run_dir / f"round-{i}" / "selected.json").read_text()) for i in (1, 2)]
    from safetensors.torch import load_file

    policy = load_file(run_dir / "round-2" / "policy" / "adapter_model.safetensors")
    return recs, texts, selected, policy


def _assert_same(a, b):
    ra, ta, sa, pa = a
    rb, tb, sb, pb = b
    assert ra == rb and ta == tb and sa == sb
    assert sorted(pa) == sorted(pb) and all(torch.equal(pa[k], pb[k]) for k in pa)


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, chatty_model_dir):
    run_dir = tmp_path_factory.mktemp("local") / "run"
    _run(_cfg(chatty_model_dir), run_dir)
    out = _outputs(run_dir)
    assert any(r["reward"] for r in out[0]) and sum(len(s) for s in out[2]) > 0  # not vacuous
    return out


def test_ray_executor_gives_the_local_records(ray_local, local_run, chatty_model_dir, tmp_path):
    from seal.executor_ray import RayExecutor

    cfg = _cfg(chatty_model_dir)
    ex = _run(cfg, tmp_path / "run", lambda seal, dom: RayExecutor(cfg, dom, workers=2, grader=HashGrader()))
    assert ex.deaths == 0 and ex.retries == 0
    _assert_same(_outputs(tmp_path / "run"), local_run)


class _KillOnce:
    """Wraps a RayExecutor: after the first pass result of round 1, SIGKILL the other actor (busy with a pass)."""

    def __init__(self, inner):
        self.inner, self.killed = inner, None

    def set_policy(self, tensors):
        self.inner.set_policy(tensors)

    def run(self, jobs, on_texts=None):
        for res in self.inner.run(jobs, on_texts):
            if self.killed is None:
                victim = next(w for w in self.inner.pids() if f"ray-worker-{w}" != res.worker)
                self.killed = self.inner.pids()[victim]
                os.kill(self.killed, signal.SIGKILL)
            yield res

    def close(self):
        self.inner.close()


def test_an_actor_killed_mid_round_changes_nothing(ray_local, local_run, chatty_model_dir, tmp_path):
    from seal.executor_ray import RayExecutor

    cfg = _cfg(chatty_model_dir)
    ex = _run(cfg, tmp_path / "run", lambda seal, dom: _KillOnce(RayExecutor(cfg, dom, workers=2,
                                                                               grader=HashGrader())))
    assert ex.killed is not None and ex.inner.deaths >= 1
    _assert_same(_outputs(tmp_path / "run"), local_run)


class _Flaky(KnowledgeDomain):
    """Fails every pass that holds the context titled ``bad`` (twice, so it is recorded as failed)."""

    bad = ""

    def apply_self_edits(self, seal, items, first_slot=0):
        if any(it.ctx.title == self.bad for it in items):
            raise RuntimeError("boom in apply_self_edits")
        return super().apply_self_edits(seal, items, first_slot=first_slot)


def test_a_pass_that_fails_twice_is_recorded_and_the_round_goes_on(ray_local, chatty_model_dir, tmp_path):
    from seal.executor_ray import RayExecutor

    cfg = _cfg(chatty_model_dir, rounds=1, contexts=4)
    dom = _Flaky.from_config(cfg)
    passages = load_passages(SAMPLES)
    from seal.rest_em import round_contexts

    dom.bad = round_contexts(passages, 4, 1, 0)[0][1].title  # the round's second context
    ex = _run(cfg, tmp_path / "run", lambda seal, d: RayExecutor(cfg, d, workers=2, grader=HashGrader()),
              domain=dom)
    recs = list(read_jsonl(tmp_path / "run" / "samples.jsonl"))
    failed = [r for r in recs if r["context"] == 1]
    assert len(recs) == 8 and len(failed) == 2 and ex.retries == 2
    assert all(r["reward"] is None and "boom in apply_self_edits" in r["failed"] for r in failed)
    assert not any("worker failed" in (r["failed"] or "") for r in recs if r["context"] != 1)
    no_reward = sum(r["reward"] is None for r in recs)  # the failed pass, and any unusable self-edits
    assert json.loads((tmp_path / "run" / "round-1" / "metrics.json").read_text())["failed_edits"] == no_reward


def test_the_driver_killed_mid_round_resumes(ray_local, local_run, chatty_model_dir, tmp_path):
    """A `seal train knowledge --executor ray` process joins this test's Ray instance, is SIGKILLed after its
    first pass is logged, and `--resume` finishes the run with the local run's records."""
    address = ray.get_runtime_context().gcs_address
    run_dir = tmp_path / "run"
    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(json.dumps(_cfg(chatty_model_dir).to_dict()))
    code = ("import sys; from tests import test_rest_em; import seal.engine as e; "
            "orig = e.Seal.__init__; "
            "e.Seal.__init__ = lambda self, lm, cfg, grader=None, slots=1: orig(self, lm, cfg, "
            "grader=test_rest_em.HashGrader(), slots=slots); "
            "import ray; ray.cloudpickle.register_pickle_by_value(test_rest_em); "
            "from seal import cli; cli.main()")
    cmd = [sys.executable, "-c", code, "train", "knowledge", "--data", str(SAMPLES), "--out", str(run_dir),
           "--config", str(cfg_path), "--set", "self_edit.format=implications", "--executor", "ray",
           "--ray-address", address, "--workers", "2"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if len(list(read_jsonl(run_dir / "samples.jsonl"))) >= 2:  # one pass of round 1 logged
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(30)
    logged = len(list(read_jsonl(run_dir / "samples.jsonl")))
    assert 2 <= logged < 8
    r = subprocess.run([*cmd, "--resume"], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    _assert_same(_outputs(run_dir), local_run)


def test_eval_knowledge_on_ray_equals_local(ray_local, chatty_model_dir, tmp_path):
    from seal.evaluate import evaluate_knowledge
    from seal.executor_ray import RayExecutor

    cfg = _cfg(chatty_model_dir)
    cfg.eval.passages_per_pass = 1
    passages = load_passages(SAMPLES)[:3]
    methods = ["base", "passage-in-prompt", "passage", "implications"]

    def figures(executor=None, log=None):
        seal = Seal.load(cfg, slots=2, grader=HashGrader())
        d = evaluate_knowledge(seal, passages, methods, seeds=[0, 1], executor=executor, log_path=log).as_dict()
        return {m: {k: v for k, v in st.items() if not k.startswith("s_")} for m, st in d["methods"].items()}

    local = figures(log=tmp_path / "local.jsonl")
    ex = RayExecutor(cfg, KnowledgeDomain.from_config(cfg), workers=2, grader=HashGrader())
    try:
        remote = figures(ex, log=tmp_path / "ray.jsonl")
    finally:
        ex.close()
    assert remote == local and local["passage"]["edits"] == 6
    assert (tmp_path / "ray.jsonl").read_text() == (tmp_path / "local.jsonl").read_text()  # same answers, losses
