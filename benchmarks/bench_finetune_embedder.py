"""Embedder fine-tuning on SciFact (train split): held-out nDCG@10 and Recall@10 of the base and the tuned embedder.

The 809 judged train queries are split at query level (seeded, --test-fraction held out). `finetune_embedder`
sees only the other queries (it splits those again into training and validation for early stopping), with
MultipleNegativesRankingLoss and BM25-mined hard negatives. Base and tuned embedders are then evaluated on the
same held-out queries with `evaluate_retrieval(mode='dense')`: the whole corpus chunked and indexed, chunks
aggregated to documents by their best chunk, metrics as trec_eval computes them.
Target (issue 3): tuned - base >= +0.02 nDCG@10 on the held-out queries.
Training runs first, so the reported peak RSS is that of training (evaluation comes after).
Run it alone on the machine, e.g.  .venv/bin/python benchmarks/bench_finetune_embedder.py --threads 2
"""
import json, shutil, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as H
import numpy as np


def held_out_metrics(runs:dict, qrels:dict, qids:list)->dict:
    from genai_accel.assessment.retrieval_eval import ndcg_at_k, recall_at_k, mrr_at_k
    return {'ndcg@10': float(np.mean([ndcg_at_k(runs[q], qrels[q], 10) for q in qids])),
            'recall@10': float(np.mean([recall_at_k(runs[q], qrels[q], 10) for q in qids])),
            'recall@100': float(np.mean([recall_at_k(runs[q], qrels[q], 100) for q in qids])),
            'mrr@10': float(np.mean([mrr_at_k(runs[q], qrels[q], 10) for q in qids]))}


def main():
    ap = H.parser(__doc__)
    ap.add_argument('--workspace', default='/work/lead_exp/bench_ws', help='parent folder of the cached SciFact workspaces')
    ap.add_argument('--run-dir', help='fine-tuning run folder (default: a temporary folder, removed at the end)')
    ap.add_argument('--test-fraction', type=float, default=0.2, help='share of the judged queries held out for the final test')
    ap.add_argument('--seed', type=int, default=0, help='seed of the held-out split (fine-tuning uses finetune.seed)')
    ap.add_argument('--epochs', type=int, help='most epochs (default finetune.embedder_epochs)')
    ap.add_argument('--lr', type=float, help='learning rate (default finetune.embedder_lr)')
    ap.add_argument('--batch-size', type=int, help='pairs per step (default finetune.embedder_batch_size)')
    ap.add_argument('--hard-negatives', type=int, help='mined negatives per pair (default finetune.hard_negatives)')
    a = ap.parse_args()
    ctx = H.setup(a, 'bench_finetune_embedder')
    from genai_accel.core.config import Settings
    from genai_accel.generative.finetune import finetune_embedder
    from genai_accel.core.models import Embedder
    from genai_accel.assessment.retrieval_eval import evaluate_retrieval

    s = Settings(env={}).with_overrides(models__threads=a.threads)
    corpus, queries, qrels = H.load_scifact(a.data)
    folder, tmp, base_ws = Path(a.data), Path(tempfile.mkdtemp(prefix='bench_finetune-')), a.workspace
    if a.small:
        corpus, queries, qrels = H.small_subset(corpus, queries, qrels, n_queries=40, n_docs=300)
        folder, base_ws = H.write_beir(tmp/'scifact-small', corpus, queries, qrels), tmp/'ws'
        s = s.with_overrides(finetune__validation_pool=5)
    run_dir = Path(a.run_dir) if a.run_dir else tmp/'run'
    fit_ids, test_ids = H.heldout_split(qrels, a.test_fraction, a.seed)
    print(f"{len(corpus)} documents, {len(qrels)} judged queries: {len(fit_ids)} for fine-tuning, {len(test_ids)} held out", flush=True)

    t = time.perf_counter()
    summary = finetune_embedder(folder, run_dir, s, epochs=1 if a.small and not a.epochs else a.epochs, lr=a.lr,
                                batch_size=a.batch_size, hard_negatives=a.hard_negatives, query_ids=fit_ids, progress=False)
    train_s = time.perf_counter() - t
    cfg = json.loads((run_dir/'config.json').read_text())
    history = [json.loads(l) for l in (run_dir/'metrics.jsonl').read_text().splitlines()]
    print(f"fine-tuned in {train_s:.0f} s: {summary['n_train']} train pairs, {summary['n_val']} validation pairs, "
          f"best epoch {summary['best_epoch']} of {summary['epochs_run']}, peak RSS {summary['peak_rss_mb']:.0f} MB", flush=True)
    for h in history:
        print(f"  epoch {h['epoch']}: train loss {h['train_loss'] if h['train_loss'] is None else round(h['train_loss'], 4)}, "
              f"val loss {h['val_loss']:.4f}, val pool nDCG@10 {h['val_ndcg10']:.4f}", flush=True)

    res = {}
    for name, settings in (('base', s), ('tuned', s.with_overrides(models__embedder=str(run_dir/'model')))):
        t = time.perf_counter()
        r = evaluate_retrieval(folder, 'train', 'dense', settings, workspace=base_ws, embedder=Embedder(settings), return_runs=True)
        res[name] = held_out_metrics(r['runs'], qrels, test_ids)
        res[name]['eval_s'] = round(time.perf_counter() - t, 1)
        print(f"  {name}: evaluated in {res[name]['eval_s']:.0f} s ({r['n_chunks']} chunks)", flush=True)

    delta = res['tuned']['ndcg@10'] - res['base']['ndcg@10']
    print(f"\nSciFact train, {len(test_ids)} held-out queries (never seen in fine-tuning), dense, {len(corpus)} documents chunked:")
    print(H.table([[k, v['ndcg@10'], v['recall@10'], v['recall@100'], v['mrr@10']] for k, v in res.items()]
                  + [['tuned - base'] + [res['tuned'][m] - res['base'][m] for m in ('ndcg@10', 'recall@10', 'recall@100', 'mrr@10')]],
                  ['embedder', 'nDCG@10', 'Recall@10', 'Recall@100', 'MRR@10']))
    print(f"train time {train_s:.0f} s ({cfg['epochs']} epochs max, lr {cfg['lr']}, batch {cfg['batch_size']}, "
          f"{cfg['hard_negatives']} hard negatives, {cfg['precision']}), peak RSS {summary['peak_rss_mb']:.0f} MB")
    checks = {} if a.small else {'tuned - base >= +0.02 nDCG@10 (held out)': delta >= 0.02}
    if a.small: print("(small run: a 40-query subset, so the target does not apply)")
    for k, ok in checks.items(): print(f"  {k}: {'PASS' if ok else 'FAIL'} ({delta:+.4f})")
    H.save(a, 'bench_finetune_embedder', ctx, dict(
        n_documents=len(corpus), n_fit_queries=len(fit_ids), n_test_queries=len(test_ids), train_s=round(train_s, 1),
        peak_rss_mb=summary['peak_rss_mb'], config={k: v for k, v in cfg.items() if k not in ('source', 'base_model')},
        history=history, summary={k: v for k, v in summary.items() if k not in ('val_query_ids', 'model', 'base_model')},
        results={k: {m: round(x, 4) for m, x in v.items()} for k, v in res.items()}, delta_ndcg10=round(delta, 4), checks=checks))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    main()
