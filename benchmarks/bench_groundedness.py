"""Groundedness scorer vs human evidence labels: ROC AUC on SciFact (train split claims with evidence).

The evaluation harness (genai_accel.assessment.evaluation) calls an answer sentence supported when its support score over the
context's sentences reaches evaluation.support_threshold. Here each SciFact claim plays the answer sentence:
  (a) abstracts that SUPPORT it (expert label) vs abstracts not cited by it: a random one (easy) and the best BM25
      one (hard, same topic), all sentences of the abstract as context;
  (b) SUPPORT vs CONTRADICT: the rationale sentences (and, separately, the whole abstract) as context.
Prints ROC AUC (0.5 = chance) and the accept/reject shares at the threshold. Results hold numbers only.
The scorer's weights were chosen on the first 120 claims of the seed-0 order: by default they are skipped
(--start 120), so the AUCs are measured on held-out claims.
"""
import sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as H


def main():
    ap = H.parser(__doc__)
    ap.add_argument('--n', type=int, default=None, help='claims with evidence to use (default: all; --small: 40)')
    ap.add_argument('--seed', type=int, default=0, help='order of the claims and the random negatives')
    ap.add_argument('--start', type=int, default=120, help='skip the first claims of that order (the tuning claims)')
    a = ap.parse_args()
    ctx = H.setup(a, 'bench_groundedness')
    from genai_accel.core.config import Settings
    from genai_accel.assessment.evaluation import validate_groundedness
    s = Settings(env={}).with_overrides(models__threads=a.threads)
    n = a.n or (40 if a.small else None)
    t = time.perf_counter()
    v = validate_groundedness(a.data, s, n=n, seed=a.seed, start=a.start)
    v['seconds'] = round(time.perf_counter() - t, 1)
    rows = [['(a) SUPPORT abstract vs random abstract', v['auc_support_vs_random'], f"{v['n']['support']} / {v['n']['random']}"],
            ['(a) SUPPORT abstract vs BM25-top non-cited', v['auc_support_vs_bm25'], f"{v['n']['support']} / {v['n']['bm25']}"],
            ['(b) SUPPORT vs CONTRADICT, evidence sentences', v['auc_support_vs_contradict_evidence'],
             f"{v['n']['ev_support']} / {v['n']['ev_contradict']}"],
            ['(b) SUPPORT vs CONTRADICT, whole abstract', v['auc_support_vs_contradict_abstract'],
             f"{v['n']['support']} / {v['n']['contradict']}"]]
    print(f"{v['n_claims']} claims with evidence (order seed {a.seed}, first {a.start} skipped), {v['seconds']} s")
    print(H.table(rows, ['comparison', 'ROC AUC', 'positives / negatives']))
    print(f"at support_threshold {v['threshold']}: supporting abstracts accepted {v['accepted_support']}, random rejected "
          f"{v['rejected_random']}, BM25 negatives rejected {v['rejected_bm25']}")
    print('median scores:', v['median'])
    H.save(a, 'bench_groundedness', ctx, dict(validation=v))  # the evaluation report reads 'validation'


if __name__ == '__main__':
    main()
