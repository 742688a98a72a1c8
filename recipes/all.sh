#!/usr/bin/env bash
# Every result in the README, regenerated from the shared data and the default model, then the README's tables
# rewritten from results/ (python -m seal.results readme). The results made while 10 epochs were the default
# pin SET="inner_loop.epochs=10"; the rest run at today's defaults. Each step is
#     step "NAME" "FILES IT WRITES" COMMAND...
# and the README's recipes table (python -m seal.results recipes) lists every step with the wall time, machine
# and date the manifests of its files record: ~25 h on the 2-core development machines (Intel Xeon with AVX-512
# and AMD EPYC with AVX2, where a ReST-EM round or an evaluation run alone took as long).
# Each step skips what it has done; rerun after an interruption (ReST-EM resumes, finished seed and forgetting
# files are kept).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
step() { echo "== $1 ($(( $(date +%s) - start )) s so far; writes $2)"; shift 2; "$@"; }
step "routing threshold" "results/routing/threshold.json" .venv/bin/python recipes/routing_threshold.py
step "kill soak" "results/kill_soak.json" bash scripts/kill_soak.sh --kills 10 --json results/kill_soak.json
step "ReST-EM on implications (accuracy+likelihood reward)" "results/rest_em/accuracy+likelihood.json" env \
    RUN=runs/rest-em-accll REWARD=accuracy+likelihood SAMPLES=4 SET="inner_loop.epochs=10" \
    FORMAT=implications SUMMARY=results/rest_em/accuracy+likelihood.json bash recipes/rest_em.sh
step "knowledge table" "results/knowledge/single.json" env RUN=runs/rest-em-accll ROUNDS=2 \
    METHODS=base,passage-in-prompt,passage,implications SET="inner_loop.epochs=10" bash recipes/knowledge.sh
step "knowledge: other self-edit formats" "results/knowledge/formats.json" env RUN=none SEEDS=1 \
    OUT=results/knowledge/formats METHODS=base,passage-in-prompt,passage,rewrite,self-qa \
    SET="inner_loop.epochs=10" bash recipes/knowledge.sh
step "knowledge: SEAL round 1" "results/knowledge/round1.json" env RUN=runs/rest-em-accll ROUNDS=1 \
    METHODS=base SEEDS=1 OUT=results/knowledge/round1 SET="inner_loop.epochs=10" bash recipes/knowledge.sh
step "ReST-EM on the rewrite format" "results/rest_em/rewrite-accuracy+likelihood.json" env \
    RUN=runs/rest-em-rewrite REWARD=accuracy+likelihood SAMPLES=4 FORMAT=rewrite SET="inner_loop.epochs=10" \
    SUMMARY=results/rest_em/rewrite-accuracy+likelihood.json bash recipes/rest_em.sh
step "knowledge: SEAL on the rewrite format" "results/knowledge/seal-rewrite.json" env \
    RUN=runs/rest-em-rewrite ROUNDS=2 METHODS=base,rewrite SEEDS=3 OUT=results/knowledge/seal-rewrite \
    SET="inner_loop.epochs=10" bash recipes/knowledge.sh
step "knowledge: self-qa and SEAL round 1 on rewrite" "results/knowledge/round1-rewrite.json" env \
    RUN=runs/rest-em-rewrite ROUNDS=1 METHODS=base,self-qa SEEDS=3 OUT=results/knowledge/round1-rewrite \
    SET="inner_loop.epochs=10" bash recipes/knowledge.sh
step "knowledge: a second evaluation set (passages 1040-1079)" "results/knowledge/second.json" env \
    OFFSET=1040 RUN=runs/rest-em-rewrite ROUNDS=2 METHODS=base,passage SEEDS=3 OUT=results/knowledge/second \
    SET="inner_loop.epochs=10" bash recipes/knowledge.sh
step "knowledge: the untrained rewrites on the second set" "results/knowledge/second-rewrite.json" env \
    OFFSET=1040 RUN=none METHODS=rewrite SEEDS=3 OUT=results/knowledge/second-rewrite \
    SET="inner_loop.epochs=10" bash recipes/knowledge.sh
step "ReST-EM on rewrite with the paper's accuracy reward (the reward control, round 1)" \
    "results/rest_em/rewrite-accuracy.json" env RUN=runs/rest-em-rewrite-acc REWARD=accuracy ROUNDS=1 \
    SAMPLES=4 FORMAT=rewrite SET="inner_loop.epochs=10" SUMMARY=results/rest_em/rewrite-accuracy.json bash \
    recipes/rest_em.sh
step "knowledge: SEAL round 1 with the accuracy reward" "results/knowledge/round1-rewrite-accuracy.json" env \
    RUN=runs/rest-em-rewrite-acc ROUNDS=1 METHODS=passage SEEDS=2 \
    OUT=results/knowledge/round1-rewrite-accuracy SET="inner_loop.epochs=10" bash recipes/knowledge.sh
step "knowledge: three untrained rewrites per passage (eval.self_edits=3)" \
    "results/knowledge/rewrite-n3.json" env RUN=none METHODS=rewrite SEEDS=2 SELF_EDITS=3 \
    OUT=results/knowledge/rewrite-n3 SET="inner_loop.epochs=10" bash recipes/knowledge.sh
step "knowledge: three SEAL round-1 (rewrite) self-edits per passage" \
    "results/knowledge/round1-rewrite-n3.json" env RUN=runs/rest-em-rewrite ROUNDS=1 METHODS=base SEEDS=2 \
    SELF_EDITS=3 OUT=results/knowledge/round1-rewrite-n3 SET="inner_loop.epochs=10" bash \
    recipes/knowledge.sh
step \
    "knowledge: the default 5-epoch inner loop (passage, rewrite, the round-1 rewrite policy rewarded at 10)" \
    "results/knowledge/epochs5.json" env RUN=runs/rest-em-rewrite ROUNDS=1 METHODS=passage,rewrite SEEDS=3 \
    OUT=results/knowledge/epochs5 bash recipes/knowledge.sh
step "ReST-EM at the defaults (rewrite, rewards from the 5-epoch inner loop; the README's example)" \
    "results/rest_em/rewrite-epochs5.json" env RUN=runs/rest-em-rewrite-e5 ROUNDS=2 FORMAT=rewrite \
    SUMMARY=results/rest_em/rewrite-epochs5.json bash recipes/rest_em.sh
step "knowledge: its round-1 policy" "results/knowledge/epochs5-rewarded-e5.json" env \
    RUN=runs/rest-em-rewrite-e5 ROUNDS=1 METHODS=base SEEDS=3 OUT=results/knowledge/epochs5-rewarded-e5 bash \
    recipes/knowledge.sh
step "knowledge: its round-2 policy and the open book" "results/knowledge/epochs5-round2.json" env \
    RUN=runs/rest-em-rewrite-e5 ROUNDS=2 METHODS=base,passage-in-prompt SEEDS=3 \
    OUT=results/knowledge/epochs5-round2 bash recipes/knowledge.sh
step "knowledge: the implications and self-qa formats at the defaults" \
    "results/knowledge/epochs5-formats.json" env RUN=none METHODS=implications,self-qa SEEDS=3 \
    OUT=results/knowledge/epochs5-formats bash recipes/knowledge.sh
step "knowledge: the second set at the defaults (base, passage, rewrite)" "results/knowledge/second-epochs5.json" \
    env OFFSET=1040 RUN=none METHODS=base,passage,rewrite SEEDS=3 JOBS=2 OUT=results/knowledge/second-epochs5 bash \
    recipes/knowledge.sh
step "knowledge: the default policy (round 2) on the second set" "results/knowledge/second-epochs5-seal.json" env \
    OFFSET=1040 RUN=runs/rest-em-rewrite-e5 ROUNDS=2 METHODS=base SEEDS=3 JOBS=3 \
    OUT=results/knowledge/second-epochs5-seal bash recipes/knowledge.sh
step "ReST-EM round 1 with the accuracy reward at the defaults (the reward control)" \
    "results/rest_em/rewrite-accuracy-epochs5.json" env RUN=runs/rest-em-rewrite-acc-e5 REWARD=accuracy ROUNDS=1 \
    SAMPLES=4 FORMAT=rewrite SUMMARY=results/rest_em/rewrite-accuracy-epochs5.json bash recipes/rest_em.sh
step "knowledge: the accuracy-reward round-1 policy at the defaults" \
    "results/knowledge/epochs5-reward-accuracy.json" env RUN=runs/rest-em-rewrite-acc-e5 ROUNDS=1 METHODS=base \
    SEEDS=3 OUT=results/knowledge/epochs5-reward-accuracy \
    bash recipes/knowledge.sh
step "multi-passage (CPT)" "results/knowledge/cpt-n50.json" env RUN=runs/rest-em-rewrite ROUND=2 \
    SET="inner_loop.epochs=10" bash recipes/cpt.sh
step "multi-passage (CPT) at the defaults" "results/knowledge/cpt-n50-epochs5.json" env RUN=runs/rest-em-rewrite-e5 \
    ROUND=2 METHODS=base,passage,rewrite OUT=results/knowledge/cpt-n50-epochs5.json bash recipes/cpt.sh
step "forgetting" "results/forgetting/n*-*.json" env SET="inner_loop.epochs=10" bash recipes/forgetting.sh
step "codebase" "results/codebase/train.json results/codebase/eval.json" bash recipes/codebase.sh
step "ARC" "results/arc/easy.json results/arc/train.json results/arc/easy-seal.json results/arc/shared.json" \
    bash recipes/arc.sh
step "benchmarks" \
    "bench/results/cpu-2core.json bench/results/serve-cpu.json bench/results/routed-store-cpu.json" bash \
    recipes/benchmarks.sh
.venv/bin/python -m seal.results readme
echo "all recipes done in $(( $(date +%s) - start )) s"
