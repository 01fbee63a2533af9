"""Judge validation on held-out SciFact claims: the embedding groundedness scorer, the contradiction cross-encoder
fine-tuned from the shipped MiniLM, and (optionally) the LLM judge, each on the same three comparisons.

The claims with SUPPORT/CONTRADICT evidence are put in a seeded order (validate_groundedness's order); the last
--holdout share is held out: the cross-encoder never trains on those claims and no choice is made on them (its early
stopping uses validation claims from the training share). Every scorer is measured by `validate_groundedness` on the
held-out claims, with the same negatives:
  support vs random:        abstracts that SUPPORT the claim vs a random abstract not cited by it;
  support vs BM25:          ... vs the best BM25 abstract not cited by it (same topic, not the evidence);
  support vs contradict:    the evidence sentences of SUPPORT vs CONTRADICT abstracts (also: the whole abstracts).
ROC AUC with a 95% bootstrap interval (positives and negatives resampled independently). Results hold numbers only;
`nbs/reports/model_evaluation.ipynb` shows the table from benchmarks/results/bench_contradiction.json.

The contradiction scorer is the recommended ensemble (chosen on the validation claims of the training share, before the
held-out figure was read): two binary runs of `finetune_contradiction`, learning rates 4e-5 and 1e-4, probabilities
averaged. Each member is also measured alone.
  python benchmarks/bench_contradiction.py --threads 2                        # trains both members (~15 min on 2 cores), then measures
  python benchmarks/bench_contradiction.py --model RUN_A,RUN_B --judge 40     # measure trained runs; LLM judge on 40 held-out claims
"""
import sys, time, json
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as H

TARGET = 0.70  # issue 18: held-out SUPPORT vs CONTRADICT ROC AUC of the contradiction-aware scorer


class _JudgeScorer:
    "validate_groundedness's scorer interface over llm_judge: record the pairs first, then answer from batched verdicts."
    threshold, cos_weight, negation_penalty, embedder = 0.5, None, None, None
    VALUE = dict(supports=1.0, neither=0.5, unparsed=0.5, contradicts=0.0)
    def __init__(self): self.pairs, self.verdicts = [], None
    def support(self, sentences, context):
        key = (' '.join(sentences), ' '.join(context))
        if self.verdicts is None: self.pairs.append(key); return [0.0]
        return [self.VALUE[self.verdicts[key]]]


def comparisons(v:dict, seed:int)->dict:
    from genai_accel.assessment.contradiction import roc_auc_ci
    sc = v['scores']
    return dict(support_vs_random=roc_auc_ci(sc['support'], sc['random'], seed=seed),
                support_vs_bm25=roc_auc_ci(sc['support'], sc['bm25'], seed=seed),
                support_vs_contradict=roc_auc_ci(sc['ev_support'], sc['ev_contradict'], seed=seed),
                support_vs_contradict_abstract=roc_auc_ci(sc['support'], sc['contradict'], seed=seed),
                n_claims=v['n_claims'], median={k: v['median'].get(k) for k in v['median']})


def main():
    ap = H.parser(__doc__)
    ap.add_argument('--model', help='trained run folders, comma-separated (finetune_contradiction); default: train the members into --run-dir')
    ap.add_argument('--lrs', default='4e-5,1e-4', help='learning rates of the members trained (one binary run each)')
    ap.add_argument('--three-way', action='store_true', help='train three-way members (supports / contradicts / neither)')
    ap.add_argument('--run-dir', default=str(H.ROOT/'workspace'/'models'/'contradiction'), help='where training writes its run folder')
    ap.add_argument('--holdout', type=float, default=0.35, help='share of the claims held out')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--epochs', type=int, default=4)
    ap.add_argument('--judge', type=int, default=0, help='also run the LLM judge (configured generator) on the first N held-out claims')
    a = ap.parse_args()
    ctx = H.setup(a, 'bench_contradiction')
    from genai_accel.core.config import Settings
    from genai_accel.assessment.evaluation import validate_groundedness, llm_judge
    from genai_accel.assessment.contradiction import ContradictionScorer, judge_validation_table
    from genai_accel.generative.finetune import finetune_contradiction, read_claim_evidence, claim_holdout_split
    s = Settings(env={}).with_overrides(models__threads=a.threads)
    t0 = time.perf_counter()
    # 1. the model: trained now, or a given run
    if a.model: run_dirs = [Path(m.strip()) for m in a.model.split(',') if m.strip()]; runs = [json.loads((d/'summary.json').read_text()) for d in run_dirs]
    else:
        root = Path(a.run_dir) if not a.small else Path(a.run_dir + '_small')
        run_dirs, runs = [], []
        for lr in [float(x) for x in a.lrs.split(',')]:
            run_dirs.append(root/f"lr-{lr:g}")
            runs.append(finetune_contradiction(a.data, run_dirs[-1], s, holdout=a.holdout, seed=a.seed, epochs=1 if a.small else a.epochs,
                                               lr=lr, max_claims=24 if a.small else None, binary=not a.three_way))
            print(f"trained {run_dirs[-1]}: best epoch {runs[-1]['best_epoch']}, {runs[-1]['best_val']}", flush=True)
    train_s = round(time.perf_counter() - t0, 1)
    claims, _ = read_claim_evidence(a.data)
    _, heldout, start = claim_holdout_split(claims, a.holdout, a.seed)
    for run_dir, run in zip(run_dirs, runs):
        if run.get('holdout') != a.holdout or run.get('seed', a.seed) != a.seed:
            sys.exit(f"{run_dir}: trained with holdout {run.get('holdout')}, seed {run.get('seed')}; pass the same --holdout/--seed")
        assert start == run['heldout_start'] and {c['id'] for c in heldout} == set(run['heldout_claim_ids']), f"held-out claims differ from {run_dir}'s"
    n = 20 if a.small else None
    data = f"SciFact train, {n or len(heldout)} held-out claims (seed {a.seed}, last {a.holdout:.0%} of the seeded order)"
    print(f"held-out claims: {len(heldout)} from index {start}; training claims: {runs[0]['n_train_claims']}", flush=True)
    # 2. the scorers on the held-out claims
    out = []
    t = time.perf_counter()
    v = validate_groundedness(a.data, s, n=n, seed=a.seed, start=start, return_scores=True)
    out.append(dict(scorer='embedding groundedness scorer (MiniLM cosine + overlap - negation)', data=data, **comparisons(v, a.seed),
                    seconds=round(time.perf_counter() - t, 1)))
    print(f"embedding scorer: {out[-1]['seconds']} s", flush=True)
    head = lambda r: 'binary' if len(r.get('labels') or ()) == 2 else '3-way'
    members = [(f"lr {r['lr']:g}" if isinstance(r.get('lr'), float) else d.name, [d]) for d, r in zip(run_dirs, runs)]
    for name, dirs in ([('mean of ' + ' and '.join(m for m, _ in members), run_dirs)] if len(run_dirs) > 1 else []) + members:
        t = time.perf_counter()
        v = validate_groundedness(a.data, s, n=n, seed=a.seed, start=start, scorer=ContradictionScorer(dirs, s), return_scores=True)
        out.append(dict(scorer=f"contradiction cross-encoder (MiniLM fine-tuned, {head(runs[0])}, {name}), P(supports) - P(contradicts)",
                        data=data, **comparisons(v, a.seed), seconds=round(time.perf_counter() - t, 1)))
        print(f"cross-encoder {name}: {out[-1]['seconds']} s", flush=True)
    if a.judge:
        from genai_accel.generative.generation import get_generator
        t = time.perf_counter()
        js = _JudgeScorer()
        validate_groundedness(a.data, s, n=a.judge, seed=a.seed, start=start, scorer=js)     # 1st pass: the pairs
        uniq = list(dict.fromkeys(js.pairs))
        gen = get_generator(s)
        js.verdicts = dict(zip(uniq, llm_judge(uniq, gen)))
        v = validate_groundedness(a.data, s, n=a.judge, seed=a.seed, start=start, scorer=js, return_scores=True)
        from collections import Counter
        out.append(dict(scorer=f"LLM judge ({Path(str(gen.model_id)).name}), verdict supports 1 / neither 0.5 / contradicts 0",
                        data=f"SciFact train, first {v['n_claims']} of the held-out claims", **comparisons(v, a.seed),
                        verdicts=dict(Counter(js.verdicts.values())), seconds=round(time.perf_counter() - t, 1)))
        print(f"LLM judge: {out[-1]['seconds']} s, verdicts {out[-1]['verdicts']}", flush=True)
    # 3. the table
    rows = judge_validation_table(dict(scorers=out))
    for r, o in zip(rows, out):
        ab = o['support_vs_contradict_abstract']
        r['whole abstracts: S vs C'] = f"{ab['auc']:.3f}" if ab['auc'] is not None else ''
        r['S / C evidence'] = f"{o['support_vs_contradict']['n_pos']} / {o['support_vs_contradict']['n_neg']}"
    cols = list(rows[0])
    print(H.table([[r[c] for c in cols] for r in rows], cols))
    sc = out[1]['support_vs_contradict']['auc']
    print(f"target: held-out SUPPORT vs CONTRADICT ROC AUC >= {TARGET} for the cross-encoder: {sc} ({'reached' if sc >= TARGET else 'NOT reached'})")
    summary = [{k: v for k, v in r.items() if k not in ('heldout_claim_ids', 'val_groups')} for r in runs]
    H.save(a, 'bench_contradiction', ctx, dict(scorers=out, target=TARGET, reached=bool(sc is not None and sc >= TARGET),
                                               heldout=dict(start=start, n_claims=len(heldout), holdout=a.holdout, seed=a.seed),
                                               training=dict(members=summary, seconds_this_run=train_s if not a.model else None)))


if __name__ == '__main__':
    main()
