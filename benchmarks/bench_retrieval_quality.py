"""Retrieval quality on SciFact (train split): our dense, BM25 and hybrid search against the peer baselines.

Peer baselines, run here on the same data (what LlamaIndex/Haystack-style pipelines do by default):
  (a) sentence-transformers + faiss: one vector per document (title + " " + text, truncated at 256 tokens),
      fp32 defaults, cosine (flat inner product on normalised vectors);
  (b) bm25s over whole documents (title + " " + text), English stopwords and PyStemmer stemming;
  (c) plain reciprocal rank fusion (k=60) of the top 100 of (a) and (b).
Ours: `evaluate_retrieval(..., mode=dense|bm25|hybrid)`: the corpus ingested into a workspace (chunked,
dedup off), results aggregated to documents by their best chunk. The workspace is cached under --workspace
(shared with bench_search). Metrics as trec_eval computes them (linear gain, log2 discount).
Floors (issue 2): ours dense >= 0.660 and >= (a); bm25 >= 0.696 and >= (b); hybrid > max(0.710, (c), ours dense, ours bm25).
"""
import json, sys, tempfile, shutil, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as H
import numpy as np


def metrics(runs:dict, qrels:dict)->dict:
    from genai_accel.assessment.retrieval_eval import ndcg_at_k, recall_at_k, mrr_at_k
    q = list(qrels)
    return {'ndcg@10': float(np.mean([ndcg_at_k(runs[x], qrels[x], 10) for x in q])),
            'recall@10': float(np.mean([recall_at_k(runs[x], qrels[x], 10) for x in q])),
            'recall@100': float(np.mean([recall_at_k(runs[x], qrels[x], 100) for x in q])),
            'mrr@10': float(np.mean([mrr_at_k(runs[x], qrels[x], 10) for x in q]))}


def rrf(*runs, k:int=60, depth:int=100)->list:
    fused = {}
    for run in runs:
        for r, d in enumerate(run[:depth]): fused[d] = fused.get(d, 0.0) + 1.0 / (k + r + 1)
    return sorted(fused, key=lambda d: -fused[d])[:depth]


def main():
    ap = H.parser(__doc__)
    ap.add_argument('--workspace', default='/work/lead_exp/bench_ws', help='parent folder of the cached SciFact workspace')
    a = ap.parse_args()
    ctx = H.setup(a, 'bench_retrieval_quality')
    import faiss, bm25s, Stemmer
    from sentence_transformers import SentenceTransformer
    from genai_accel.core.config import Settings
    from genai_accel.core.models import Embedder
    from genai_accel.assessment.retrieval_eval import evaluate_retrieval

    s = Settings(env={}).with_overrides(models__threads=a.threads)
    corpus, queries, qrels = H.load_scifact(a.data)
    folder, tmp, base = Path(a.data), None, a.workspace
    if a.small:
        tmp = Path(tempfile.mkdtemp(prefix='bench_quality-'))
        corpus, queries, qrels = H.small_subset(corpus, queries, qrels, n_queries=20, n_docs=100)
        folder, base = H.write_beir(tmp/'scifact-small', corpus, queries, qrels), tmp/'ws'
    qids = list(qrels)
    qtexts = [queries[q] for q in qids]
    ids = [d['_id'] for d in corpus]
    docs = [(d.get('title') or '') + ' ' + d['text'] for d in corpus]
    print(f"{len(corpus)} documents, {len(qids)} judged queries (train)", flush=True)
    res, timing = {}, {}

    # (a) sentence-transformers + faiss, one vector per document
    emb = Embedder(s)
    st = SentenceTransformer(emb.path, device='cpu'); st.max_seq_length = 256
    t = time.perf_counter()
    # the peer's document vectors depend only on the model and the texts: cached beside the workspace for reruns
    import hashlib
    key = hashlib.sha256(json.dumps([emb.path, st.max_seq_length, docs]).encode()).hexdigest()[:12]
    cache = None if a.small else Path(base)/'peer_cache'/f"st_fp32_docs_{key}.npy"
    cached = cache is not None and cache.exists()
    if cached: D = np.load(cache)
    else:
        D = st.encode(docs, normalize_embeddings=True)
        if cache is not None: cache.parent.mkdir(parents=True, exist_ok=True); np.save(cache, D)
    Q = st.encode(qtexts, normalize_embeddings=True)
    index = faiss.IndexFlatIP(D.shape[1]); index.add(D)
    _, I = index.search(Q, 100)
    run_a = {q: [ids[i] for i in row if i >= 0] for q, row in zip(qids, I)}
    timing['a'] = time.perf_counter() - t
    res['(a) ST + faiss, 1 vector/doc'] = metrics(run_a, qrels)
    del st
    # (b) bm25s, stopwords + stemming, whole documents
    t = time.perf_counter()
    stem = Stemmer.Stemmer('english')
    bm = bm25s.BM25(); bm.index(bm25s.tokenize(docs, stopwords='en', stemmer=stem, show_progress=False), show_progress=False)
    B, _ = bm.retrieve(bm25s.tokenize(qtexts, stopwords='en', stemmer=stem, show_progress=False), k=min(100, len(docs)), show_progress=False)
    run_b = {q: [ids[i] for i in row] for q, row in zip(qids, B)}
    timing['b'] = time.perf_counter() - t
    res['(b) bm25s stopwords+stemming'] = metrics(run_b, qrels)
    # (c) plain RRF of (a) and (b)
    res['(c) RRF(a, b), k=60'] = metrics({q: rrf(run_a[q], run_b[q]) for q in qids}, qrels)
    print(f"peers done ((a) {timing['a']:.0f} s{' (document vectors from the cache)' if cached else ''}, (b) {timing['b']:.0f} s); ours ...", flush=True)

    ours = {}
    for mode in ('dense', 'bm25', 'hybrid'):
        r = evaluate_retrieval(folder, 'train', mode, s, workspace=base, embedder=emb)
        ours[mode] = r
        res[f"ours {mode}" + (f" ({r['fusion']})" if r.get('fusion') else '')] = {k: r[k] for k in ('ndcg@10', 'recall@10', 'recall@100', 'mrr@10')}
        print(f"  ours {mode}: index {r['index_s']} s, {r['search_ms_per_query']} ms/query, {r['n_chunks']} chunks", flush=True)

    nd = lambda key: res[key]['ndcg@10']
    a_, b_, c_ = nd('(a) ST + faiss, 1 vector/doc'), nd('(b) bm25s stopwords+stemming'), nd('(c) RRF(a, b), k=60')
    od, ob, oh = ours['dense']['ndcg@10'], ours['bm25']['ndcg@10'], ours['hybrid']['ndcg@10']
    checks = {'dense >= 0.660 and >= (a)': od >= 0.660 and od >= a_, 'bm25 >= 0.696 and >= (b)': ob >= 0.696 and ob >= b_,
              'hybrid > max(0.710, (c), ours dense, ours bm25)': oh > max(0.710, c_, od, ob)}
    if a.small: print("(small run: a 20-query subset, so the floors do not apply)")
    print(f"\nSciFact train ({len(qids)} queries, {len(corpus)} documents; ours: {ours['dense']['n_chunks']} chunks, best chunk per document):")
    print(H.table([[k, v['ndcg@10'], v['recall@10'], v['recall@100'], v['mrr@10']] for k, v in res.items()],
                  ['system', 'nDCG@10', 'Recall@10', 'Recall@100', 'MRR@10']))
    for k, ok in checks.items(): print(f"  {k}: {'PASS' if ok else 'FAIL'}")
    if tmp: shutil.rmtree(tmp, ignore_errors=True)
    H.save(a, 'bench_retrieval_quality', ctx, dict(n_queries=len(qids), n_documents=len(corpus), n_chunks=ours['dense']['n_chunks'],
                                                   fusion=ours['hybrid']['fusion'], results={k: {m: round(x, 4) for m, x in v.items()} for k, v in res.items()},
                                                   checks=checks if not a.small else {}, peer_seconds={k: round(v, 1) for k, v in timing.items()},
                                                   ours_search_ms_per_query={m: r['search_ms_per_query'] for m, r in ours.items()}))


if __name__ == '__main__':
    main()
