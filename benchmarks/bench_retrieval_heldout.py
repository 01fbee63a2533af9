"""Retrieval quality on SciFact claims never used in tuning: the default hybrid, the fine-tuned embedder and a
cross-encoder reranker, on one held-out protocol.

Protocol: the 809 judged train claims are split once by `harness.heldout_split` (seeded; the split of
bench_finetune_embedder): 647 claims to fit on, 162 held out. Every choice (fusion, weights, rerank depth) and every
training run uses the 647 fit claims only; nDCG@10 and Recall@10 are reported on the 162 held-out claims, and for the
zero-shot default also on all 809 (a figure on a small subset alone can flatter).
Configurations (each a `KnowledgeBase.search(..., unit='document')`, documents ranked by their best chunk):
  default   the hybrid search as shipped (settings.ini), base MiniLM embedder
  tuned     the same with the embedder fine-tuned on the fit claims (`finetune_embedder(..., query_ids=fit)`)
  +reranker the hybrid's top `rerank_top` chunks re-scored by a cross-encoder fine-tuned from the shipped MiniLM on
            the fit claims (`finetune_cross_encoder`: positives the cited abstracts' chunks, negatives hybrid and
            BM25 hard negatives), setting `[retrieval] reranker = DIR`
Latency: search p50/p95 per query with the reranker on and off, interleaved in one process.
Run alone:  .venv/bin/python benchmarks/bench_retrieval_heldout.py --threads 2 [--embedder DIR] [--reranker DIR]
"""
import json, random, shutil, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as H
import numpy as np


def reranker_rows(kb, queries:dict, qrels:dict, qids:list, n_hard:int=3, n_bm25:int=0, n_deep:int=0, depth:int=30, seed:int=0)->list[dict]:
    """Training rows for `finetune_cross_encoder` from the fit claims: per claim, the best-ranked hybrid chunk of each
    cited document (or the document's first chunk when the hybrid search misses it) labelled 1; the best-ranked chunks
    of the first `n_hard` other documents of the hybrid ranking, of `n_bm25` more from the BM25 ranking and of `n_deep`
    drawn from hybrid ranks 11-`depth` labelled 0; grouped by claim. (The recorded run used 3 hybrid hard negatives.)"""
    from genai_accel.data.index import ALL_ACCESS, index_text
    from genai_accel.data.store import chunk_corpus
    first = {}
    for r in chunk_corpus(kb.con): first.setdefault(r['doc_id'], index_text(r['title'] or '', r['text']))
    rng, rows = random.Random(seed), []
    for q in qids:
        rel = {d for d, v in qrels[q].items() if v > 0}
        text = lambda h: index_text(h.title, h.text)
        hyb = kb.search(queries[q], k=depth, mode='hybrid', groups=ALL_ACCESS, unit='document', log=False)
        bm = kb.search(queries[q], k=10, mode='bm25', groups=ALL_ACCESS, unit='document', log=False)
        found = {h.doc_id: text(h) for h in hyb if h.doc_id in rel}
        pos = [found.get(d) or first.get(d) for d in sorted(rel)]
        negs = [text(h) for h in hyb if h.doc_id not in rel][:n_hard]
        extra = [text(h) for h in bm if h.doc_id not in rel and text(h) not in negs]
        negs += extra[:n_bm25]
        rest = [text(h) for h in hyb[10:] if h.doc_id not in rel and text(h) not in negs]
        negs += rng.sample(rest, min(n_deep, len(rest)))
        rows += [dict(text_a=queries[q], text_b=p, label=1.0, group=q) for p in pos if p]
        rows += [dict(text_a=queries[q], text_b=n, label=0.0, group=q) for n in negs]
    return rows


def corpus_workspace(folder:Path, ws:Path, s, embedder)->Path:
    "`ws` holding the corpus indexed with `embedder` (ingested when it holds no index; dedup off, as in evaluate_retrieval)."
    if not (Path(ws)/'index'/'CURRENT').exists():
        from genai_accel.data.distributed import run_ingest
        t = time.perf_counter()
        run_ingest('local', [Path(folder)/'corpus.jsonl'], ws, s.with_overrides(dedup__enabled=False, dedup__near_duplicates=False),
                   embedder=embedder, progress=False)
        print(f"  ingested {folder}/corpus.jsonl into {ws} in {time.perf_counter() - t:.0f} s", flush=True)
    return Path(ws)


def metrics(runs:dict, qrels:dict, qids:list)->dict:
    from genai_accel.core.metrics import ndcg_at_k, recall_at_k
    return {'ndcg@10': round(float(np.mean([ndcg_at_k(runs[q], qrels[q], 10) for q in qids])), 4),
            'recall@10': round(float(np.mean([recall_at_k(runs[q], qrels[q], 10) for q in qids])), 4),
            'n': len(qids)}


def rankings(kb, queries:dict, qids:list, k:int=10)->dict:
    "Each query's ranked document ids: the search a user runs (k results, documents by their best chunk)."
    from genai_accel.data.index import ALL_ACCESS
    return {q: kb.search_documents(queries[q], k=k, groups=ALL_ACCESS) for q in qids}


def latency(kb_off, kb_on, queries:list[str], k:int=10)->dict:
    "Search latency per query (ms), reranker off and on, interleaved in this process (the order alternates)."
    from genai_accel.data.index import ALL_ACCESS
    from harness import percentile
    for kb in (kb_off, kb_on): kb.search(queries[0], k=k, groups=ALL_ACCESS, log=False)  # load models and index
    on, off = [], []
    for i, q in enumerate(queries):
        for kb in ((kb_on, kb_off) if i % 2 else (kb_off, kb_on)):
            t = time.perf_counter(); kb.search(q, k=k, groups=ALL_ACCESS, log=False)
            (on if kb is kb_on else off).append(1000 * (time.perf_counter() - t))
    res = {'off_p50_ms': percentile(off, 50), 'off_p95_ms': percentile(off, 95), 'on_p50_ms': percentile(on, 50), 'on_p95_ms': percentile(on, 95)}
    res = {k: round(v, 1) for k, v in res.items()}
    res.update(added_p50_ms=round(res['on_p50_ms'] - res['off_p50_ms'], 1), added_p95_ms=round(res['on_p95_ms'] - res['off_p95_ms'], 1), n=len(queries))
    return res


def main():
    ap = H.parser(__doc__)
    ap.add_argument('--workspace', default='/tmp/genai_accel_bench/heldout_base', help='workspace with the corpus indexed by the base embedder (ingested when empty)')
    ap.add_argument('--tuned-workspace', default='/tmp/genai_accel_bench/heldout_tuned', help='workspace indexed by the tuned embedder (ingested when empty)')
    ap.add_argument('--embedder', help='a fine-tuned embedder (model folder) to use; default: fine-tune one on the fit claims (finetune_embedder)')
    ap.add_argument('--reranker', help='a fine-tuned cross-encoder (model folder) to use; default: fine-tune one on the fit claims (finetune_cross_encoder)')
    ap.add_argument('--run-dir', default='/tmp/genai_accel_bench/heldout_runs', help='where training runs write their models')
    ap.add_argument('--embedder-epochs', type=int, help='most epochs of the embedder fine-tune (default finetune.embedder_epochs)')
    ap.add_argument('--reranker-epochs', type=int, default=1, help='most epochs of the cross-encoder fine-tune')
    ap.add_argument('--rerank-top', type=int, help='results the reranker re-scores (default retrieval.rerank_top)')
    ap.add_argument('--latency-queries', type=int, default=40, help='held-out queries timed with the reranker on and off')
    a = ap.parse_args()
    ctx = H.setup(a, 'bench_retrieval_heldout')
    from genai_accel.core.config import Settings
    from genai_accel.core.models import Embedder
    from genai_accel.data.index import KnowledgeBase

    s = Settings(env={}).with_overrides(models__threads=a.threads, **({'retrieval__rerank_top': a.rerank_top} if a.rerank_top else {}))
    corpus, queries, qrels = H.load_scifact(a.data)
    folder, tmp = Path(a.data), None
    ws_base, ws_tuned, run_dir = Path(a.workspace), Path(a.tuned_workspace), Path(a.run_dir)
    if a.small:
        tmp = Path(tempfile.mkdtemp(prefix='bench_heldout-'))
        corpus, queries, qrels = H.small_subset(corpus, queries, qrels, n_queries=40, n_docs=300)
        folder = H.write_beir(tmp/'scifact-small', corpus, queries, qrels)
        ws_base, ws_tuned, run_dir = tmp/'ws_base', tmp/'ws_tuned', tmp/'runs'
    fit, test = H.heldout_split(qrels)
    print(f"{len(corpus)} documents, {len(qrels)} judged claims: {len(fit)} to fit on, {len(test)} held out "
          f"(rerank_top {s.retrieval.rerank_top})", flush=True)
    base_emb = Embedder(s)
    corpus_workspace(folder, ws_base, s, base_emb)
    kb = KnowledgeBase(ws_base, s, embedder=base_emb)
    res, train = {}, {}

    # 1. the default, zero-shot: held out and all claims
    runs = rankings(kb, queries, sorted(qrels))
    res['default (hybrid, base embedder)'] = dict(held_out=metrics(runs, qrels, test), all=metrics(runs, qrels, sorted(qrels)), fit=metrics(runs, qrels, fit))
    print(f"  default: held-out nDCG@10 {res['default (hybrid, base embedder)']['held_out']['ndcg@10']}, "
          f"all {res['default (hybrid, base embedder)']['all']['ndcg@10']}", flush=True)

    # 2. the reranker, trained on the fit claims only (its validation share is fit claims too)
    reranker = a.reranker
    if not reranker:
        from genai_accel.generative.finetune import finetune_cross_encoder
        rows = reranker_rows(kb, queries, qrels, fit)
        t = time.perf_counter()
        summ = finetune_cross_encoder(rows, run_dir/'reranker', s, epochs=a.reranker_epochs, max_length=128)
        train['reranker'] = dict(seconds=round(time.perf_counter() - t, 1), rows=len(rows), best_epoch=summ.get('best_epoch'))
        reranker = summ['model']
        print(f"  reranker trained in {train['reranker']['seconds']:.0f} s on {len(rows)} rows", flush=True)

    # 3. the fine-tuned embedder (fit claims only), its own workspace
    embedder = a.embedder
    if not embedder:
        from genai_accel.generative.finetune import finetune_embedder
        t = time.perf_counter()
        summ = finetune_embedder(folder, run_dir/'embedder', s, epochs=1 if a.small else a.embedder_epochs, query_ids=fit, progress=False)
        train['embedder'] = dict(seconds=round(time.perf_counter() - t, 1), best_epoch=summ.get('best_epoch'))
        embedder = summ['model']
    s_tuned = s.with_overrides(models__embedder=str(embedder))
    tuned_emb = Embedder(s_tuned)
    corpus_workspace(folder, ws_tuned, s_tuned, tuned_emb)
    kb_tuned = KnowledgeBase(ws_tuned, s_tuned, embedder=tuned_emb)

    s_rr, s_tuned_rr = s.with_overrides(retrieval__reranker=str(reranker)), s_tuned.with_overrides(retrieval__reranker=str(reranker))
    kb_rr, kb_tuned_rr = KnowledgeBase(ws_base, s_rr, embedder=base_emb), KnowledgeBase(ws_tuned, s_tuned_rr, embedder=tuned_emb)
    for name, k in (('fine-tuned embedder', kb_tuned), ('default + reranker', kb_rr), ('fine-tuned embedder + reranker', kb_tuned_rr)):
        t = time.perf_counter()
        runs = rankings(k, queries, test)
        res[name] = dict(held_out=metrics(runs, qrels, test))
        print(f"  {name}: held-out nDCG@10 {res[name]['held_out']['ndcg@10']} ({time.perf_counter() - t:.0f} s)", flush=True)

    # 3b. the fusion weight for the tuned embedder, chosen on the fine-tune's validation claims (fit claims it never trained
    # on; never the held-out ones): a tuned dense retriever deserves more weight than the zero-shot one
    summ_file = Path(embedder).parent/'summary.json'
    val = [q for q in json.loads(summ_file.read_text()).get('val_query_ids', []) if q in qrels] if summ_file.exists() else []
    assert not set(val) & set(test), 'validation claims overlap the held-out ones'
    if val:
        sweep = {}
        for w in (0.5, 0.6, 0.7, 0.8):
            s_w = s_tuned.with_overrides(retrieval__dense_weight=w, retrieval__bm25_weight=round(1 - w, 2))
            sweep[w] = metrics(rankings(KnowledgeBase(ws_tuned, s_w, embedder=tuned_emb), queries, val), qrels, val)['ndcg@10']
        w = max(sweep, key=sweep.get)
        s_w = s_tuned.with_overrides(retrieval__dense_weight=w, retrieval__bm25_weight=round(1 - w, 2))
        name = f'fine-tuned embedder, dense_weight {w} (chosen on {len(val)} validation claims)'
        res[name] = dict(held_out=metrics(rankings(KnowledgeBase(ws_tuned, s_w, embedder=tuned_emb), queries, test), qrels, test),
                         validation_sweep=sweep, dense_weight=w, n_validation=len(val))
        print(f"  {name}: validation {sweep}; held-out nDCG@10 {res[name]['held_out']['ndcg@10']}", flush=True)
    else: print(f"  no validation claims in {summ_file}: fusion weight left at {s.retrieval.dense_weight}", flush=True)

    # 4. latency the reranker adds, same process, interleaved
    lq = [queries[q] for q in test[:a.latency_queries]]
    lat = {'base embedder': latency(kb, kb_rr, lq), 'fine-tuned embedder': latency(kb_tuned, kb_tuned_rr, lq)}
    res['default + reranker']['latency'], res['fine-tuned embedder + reranker']['latency'] = lat['base embedder'], lat['fine-tuned embedder']

    d0 = res['default (hybrid, base embedder)']['held_out']['ndcg@10']
    rows_t = []
    for name, v in res.items():
        l = v.get('latency')
        rows_t.append([name, v['held_out']['ndcg@10'], f"{v['held_out']['ndcg@10'] - d0:+.4f}", v['all']['ndcg@10'] if 'all' in v else '-',
                       v['held_out']['recall@10'], f"+{l['added_p50_ms']} / +{l['added_p95_ms']}" if l else '0'])
    print(f"\nSciFact train, {len(test)} held-out claims (never used to fit anything; all = {len(qrels)} claims, zero-shot only), "
          f"{len(corpus)} abstracts chunked, k=10, documents by their best chunk:")
    print(H.table(rows_t, ['configuration', 'held-out nDCG@10', 'gain', 'all-claims nDCG@10', 'held-out Recall@10', 'added latency p50 / p95 ms']))
    for name, l in lat.items():
        print(f"  search latency, {name}: reranker off p50 {l['off_p50_ms']} ms / p95 {l['off_p95_ms']} ms, "
              f"on p50 {l['on_p50_ms']} ms / p95 {l['on_p95_ms']} ms ({l['n']} queries, rerank_top {s.retrieval.rerank_top})")
    # the tuned configuration is fixed before looking at held-out figures: the validation-chosen weight when there is one
    chosen = next((k_ for k_ in res if k_.startswith('fine-tuned embedder, dense_weight')), 'fine-tuned embedder')
    best_tuned = res[chosen]['held_out']['ndcg@10']
    checks = {} if a.small else {'default held-out nDCG@10 >= 0.75': d0 >= 0.75, 'tuned held-out nDCG@10 >= 0.78': best_tuned >= 0.78}
    if a.small: print("(small run: a 40-claim subset, so the targets do not apply)")
    for k_, ok in checks.items(): print(f"  {k_}: {'PASS' if ok else 'FAIL'}")
    H.save(a, 'bench_retrieval_heldout', ctx, dict(n_documents=len(corpus), n_fit=len(fit), n_held_out=len(test), split='harness.heldout_split(seed=0, 0.2)',
                                                  rerank_top=s.retrieval.rerank_top, results=res, training=train, checks=checks,
                                                  embedder=str(embedder), reranker=str(reranker)))
    if tmp: shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    main()
