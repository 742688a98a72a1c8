#!/usr/bin/env bash
# Every result in the README, regenerated from the shared data and the default model, then the README's tables
# rewritten from results/ (python -m seal.results readme). The results made while 10 epochs were the default
# pin SET="inner_loop.epochs=10"; the rest run at today's defaults. Expected wall time on the 2-core development machine
# (an Intel Xeon with AVX-512; on a 2-core AMD EPYC with AVX2 a ReST-EM round and evaluation, each run alone,
# took as long):
# ~25 h (ReST-EM ~27 min, knowledge table ~35-40 min per seed at 40 passages (3 seeds), the other formats ~35 min,
# SEAL round 1 ~15 min, ReST-EM on rewrite ~30 min and its rows ~40 min per seed (3 seeds), self-qa and the
# rewrite SEAL round 1 ~32 min per seed (3 seeds), forgetting ~75 min,
# a second evaluation set ~36 min per seed (3 seeds) and its rewrites ~21 min per seed (3 seeds), the reward
# control ~15 min and its row ~30 min per seed (2 seeds), three rewrites per passage ~45 min per seed (2 seeds)
# and three SEAL self-edits per passage ~55 min per seed (2 seeds, on AMD), then at the default 5 epochs (on AMD):
# passage, rewrite and the 10-epoch policy ~40 min per seed (3 seeds), ReST-EM ~11 min a round run alone, its
# round-1 row ~20-25 min per seed (3 seeds), its round-2 row with the open book ~22 min per seed (3 seeds),
# implications and self-qa ~30 min per seed; codebase ~20 min, ARC ~23 min, CPT ~76 min,
# benchmarks ~25 min, kill soak and routing threshold ~2 min).
# Each step skips nothing it has not done; rerun after an interruption (ReST-EM resumes, finished forgetting results are kept).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
step() { echo "== $1 ($(( $(date +%s) - start )) s so far)"; shift; "$@"; }
step "routing threshold" .venv/bin/python recipes/routing_threshold.py
step "kill soak" bash scripts/kill_soak.sh --kills 10 --json results/kill_soak.json
step "ReST-EM on implications (accuracy+likelihood reward)" env RUN=runs/rest-em-accll REWARD=accuracy+likelihood \
    SAMPLES=4 SET="inner_loop.epochs=10" FORMAT=implications SUMMARY=results/rest_em/accuracy+likelihood.json \
    bash recipes/rest_em.sh
step "knowledge table" env RUN=runs/rest-em-accll ROUNDS=2 METHODS=base,passage-in-prompt,passage,implications \
    SET="inner_loop.epochs=10" bash recipes/knowledge.sh
step "knowledge: other self-edit formats" env RUN=none SEEDS=1 OUT=results/knowledge/formats \
    METHODS=base,passage-in-prompt,passage,rewrite,self-qa SET="inner_loop.epochs=10" bash recipes/knowledge.sh
step "knowledge: SEAL round 1" env RUN=runs/rest-em-accll ROUNDS=1 METHODS=base SEEDS=1 \
    OUT=results/knowledge/round1 SET="inner_loop.epochs=10" bash recipes/knowledge.sh
step "ReST-EM on the rewrite format" env RUN=runs/rest-em-rewrite REWARD=accuracy+likelihood SAMPLES=4 FORMAT=rewrite \
    SET="inner_loop.epochs=10" SUMMARY=results/rest_em/rewrite-accuracy+likelihood.json bash recipes/rest_em.sh
step "knowledge: SEAL on the rewrite format" env RUN=runs/rest-em-rewrite ROUNDS=2 METHODS=base,rewrite SEEDS=3 \
    OUT=results/knowledge/seal-rewrite SET="inner_loop.epochs=10" bash recipes/knowledge.sh
step "knowledge: self-qa and SEAL round 1 on rewrite" env RUN=runs/rest-em-rewrite ROUNDS=1 METHODS=base,self-qa \
    SEEDS=3 OUT=results/knowledge/round1-rewrite SET="inner_loop.epochs=10" bash recipes/knowledge.sh
step "knowledge: a second evaluation set (passages 1040-1079)" env OFFSET=1040 RUN=runs/rest-em-rewrite ROUNDS=2 \
    METHODS=base,passage SEEDS=3 OUT=results/knowledge/second SET="inner_loop.epochs=10" bash recipes/knowledge.sh
step "knowledge: the untrained rewrites on the second set" env OFFSET=1040 RUN=none METHODS=rewrite SEEDS=3 \
    OUT=results/knowledge/second-rewrite SET="inner_loop.epochs=10" bash recipes/knowledge.sh
step "ReST-EM on rewrite with the paper's accuracy reward (the reward control, round 1)" env \
    RUN=runs/rest-em-rewrite-acc REWARD=accuracy ROUNDS=1 SAMPLES=4 FORMAT=rewrite SET="inner_loop.epochs=10" \
    SUMMARY=results/rest_em/rewrite-accuracy.json bash recipes/rest_em.sh
step "knowledge: SEAL round 1 with the accuracy reward" env RUN=runs/rest-em-rewrite-acc ROUNDS=1 METHODS=passage \
    SEEDS=2 OUT=results/knowledge/round1-rewrite-accuracy SET="inner_loop.epochs=10" bash recipes/knowledge.sh
step "knowledge: three untrained rewrites per passage (eval.self_edits=3)" env RUN=none METHODS=rewrite SEEDS=2 \
    SELF_EDITS=3 OUT=results/knowledge/rewrite-n3 SET="inner_loop.epochs=10" bash recipes/knowledge.sh
step "knowledge: three SEAL round-1 (rewrite) self-edits per passage" env RUN=runs/rest-em-rewrite ROUNDS=1 \
    METHODS=base SEEDS=2 SELF_EDITS=3 OUT=results/knowledge/round1-rewrite-n3 SET="inner_loop.epochs=10" \
    bash recipes/knowledge.sh
step "knowledge: the default 5-epoch inner loop (passage, rewrite, the round-1 rewrite policy rewarded at 10)" \
    env RUN=runs/rest-em-rewrite ROUNDS=1 METHODS=passage,rewrite SEEDS=3 OUT=results/knowledge/epochs5 \
    bash recipes/knowledge.sh
step "ReST-EM at the defaults (rewrite, rewards from the 5-epoch inner loop; the README's example)" env \
    RUN=runs/rest-em-rewrite-e5 ROUNDS=2 FORMAT=rewrite SUMMARY=results/rest_em/rewrite-epochs5.json \
    bash recipes/rest_em.sh
step "knowledge: its round-1 policy" env RUN=runs/rest-em-rewrite-e5 ROUNDS=1 METHODS=base SEEDS=3 \
    OUT=results/knowledge/epochs5-rewarded-e5 bash recipes/knowledge.sh
step "knowledge: its round-2 policy and the open book" env RUN=runs/rest-em-rewrite-e5 ROUNDS=2 \
    METHODS=base,passage-in-prompt SEEDS=3 OUT=results/knowledge/epochs5-round2 bash recipes/knowledge.sh
step "knowledge: the implications and self-qa formats at the defaults" env RUN=none METHODS=implications,self-qa \
    SEEDS=3 OUT=results/knowledge/epochs5-formats bash recipes/knowledge.sh
step "multi-passage (CPT)" env RUN=runs/rest-em-rewrite ROUND=2 SET="inner_loop.epochs=10" bash recipes/cpt.sh
step "forgetting" env SET="inner_loop.epochs=10" bash recipes/forgetting.sh
step "codebase" bash recipes/codebase.sh
step "ARC" bash recipes/arc.sh
step "benchmarks" bash recipes/benchmarks.sh
.venv/bin/python -m seal.results readme
echo "all recipes done in $(( $(date +%s) - start )) s"
