"""Search latency: KnowledgeBase.search against calling faiss and bm25s directly, on the same index and queries.

Workspace: SciFact corpus.jsonl ingested once by `ingest` (dedup off, as evaluate_retrieval does), cached under
--workspace (it is the workspace `evaluate_retrieval(..., workspace=--workspace)` uses, so bench_retrieval_quality
and this script share one index). The peer loads the same vectors and the same saved bm25s index and calls the
libraries directly: embed the query with the same Embedder, `faiss_index.search`, `bm25.retrieve` with the same
tokenization (bm25_tokenize), and for hybrid a plain reciprocal rank fusion (k=60) in Python over the same number
of candidates (retrieval.candidates) as ours; it maps the top k to in-memory chunk texts and document ids, while
ours also reads them from SQLite. Per query the two run back to back (order alternating); p50/p95 over the queries,
median over --repeats passes. Two settings:
  end-to-end   the query is embedded inside each call (what a user waits for);
  search only  the query vector is given (isolates the search layer's overhead).
Target: hybrid overhead (ours / peer) <= 1.2x. --profile prints where ours spends its time (cProfile).
"""
import sys, tempfile, shutil, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as H
import numpy as np


def main():
    ap = H.parser(__doc__)
    ap.add_argument('--workspace', default='/work/lead_exp/bench_ws', help='parent folder of the cached SciFact workspace')
    ap.add_argument('--queries', type=int, default=300)
    ap.add_argument('--k', type=int, default=10)
    ap.add_argument('--profile', action='store_true', help='cProfile our hybrid search (query vector given)')
    a = ap.parse_args()
    ctx = H.setup(a, 'bench_search')
    import faiss, bm25s
    from genai_accel.core.config import Settings
    from genai_accel.core.models import Embedder
    from genai_accel.data.ingest import ingest
    from genai_accel.data.store import chunk_texts
    from genai_accel.data.index import KnowledgeBase, bm25_tokenize
    from genai_accel.assessment.retrieval_eval import eval_workspace

    s = Settings(env={}).with_overrides(dedup__enabled=False, dedup__near_duplicates=False, models__threads=a.threads)
    corpus, queries, qrels = H.load_scifact(a.data)
    tmp = None
    folder = Path(a.data)
    if a.small:
        tmp = Path(tempfile.mkdtemp(prefix='bench_search-'))
        corpus, queries, qrels = H.small_subset(corpus, queries, qrels, n_queries=30, n_docs=100)
        folder = H.write_beir(tmp/'scifact-small', corpus, queries, qrels)
        a.queries = min(a.queries, 30)
    ws = eval_workspace(folder, s, tmp/'ws' if tmp else a.workspace)
    emb = Embedder(s)
    t0 = time.perf_counter()
    man = ingest([folder/'corpus.jsonl'], ws, s, embedder=emb)
    print(f"workspace {ws}: {man.summary()} ({time.perf_counter() - t0:.1f} s)", flush=True)
    kb = KnowledgeBase(ws, s, embedder=emb)
    n = len(kb)

    # The peer: the same data, straight into the libraries.
    gen = ws/'index'/(ws/'index'/'CURRENT').read_text().strip()
    vectors = np.load(gen/'vectors.npy')
    findex = faiss.IndexFlatIP(vectors.shape[1]); findex.add(vectors)
    bm = bm25s.BM25.load(str(gen/'bm25'), show_progress=False)
    rows = kb.rows.tolist()
    by_row = {r['row']: (r['text'], r['doc_id']) for r in chunk_texts(kb.con)}
    texts = [by_row[r][0] for r in rows]; doc_ids = [by_row[r][1] for r in rows]
    C, k = min(max(s.retrieval.candidates, 5 * a.k), n), a.k

    def peer_dense(q, qv=None):
        qv = emb.encode([q]) if qv is None else qv[None]
        _, I = findex.search(qv, k)
        return [(texts[i], doc_ids[i]) for i in I[0] if i >= 0]
    def peer_bm25(q, qv=None):
        toks = bm25_tokenize([q], s, return_ids=False)
        I, _ = bm.retrieve(toks, k=k, show_progress=False)
        return [(texts[i], doc_ids[i]) for i in I[0]]
    def peer_hybrid(q, qv=None):
        qv = emb.encode([q]) if qv is None else qv[None]
        _, I = findex.search(qv, C)
        B, _ = bm.retrieve(bm25_tokenize([q], s, return_ids=False), k=C, show_progress=False)
        fused = {}
        for ranked in (I[0], B[0]):
            for r, i in enumerate(ranked):
                if i >= 0: fused[int(i)] = fused.get(int(i), 0.0) + 1.0 / (60 + r + 1)
        top = sorted(fused, key=fused.get, reverse=True)[:k]
        return [(texts[i], doc_ids[i]) for i in top]
    def ours(mode):
        return lambda q, qv=None: [(h.text, h.doc_id) for h in kb.search(q, k=k, mode=mode, query_vector=qv, groups=ALL_ACCESS)]

    qids = sorted(queries)[:a.queries]
    qtexts = [queries[q] for q in qids]
    qvecs = emb.encode(qtexts)
    pairs = {m: (ours(m), peer) for m, peer in (('hybrid', peer_hybrid), ('dense', peer_dense), ('bm25', peer_bm25))}
    # warm-up, and a check that both sides search the same data: dense top-k chunks must agree
    same = np.mean([[t for t, _ in pairs['dense'][0](q)] == [t for t, _ in peer_dense(q)] for q in qtexts[:20]])
    for q in qtexts[:20]:
        for o, p in pairs.values(): o(q); p(q)
    print(f"{n} chunks, {len(qtexts)} queries, k={k}, candidates={C}; dense top-{k} identical to the peer on {same:.0%} of 20 queries", flush=True)

    settings_ = [('end-to-end', False), ('search only', True)]
    lat = {}  # (setting, mode, side) -> list over passes of per-query latencies (ms)
    for rep in range(a.repeats):
        for name, given in settings_:
            for mode, (o, p) in pairs.items():
                if mode == 'bm25' and given: continue  # no embedding in BM25
                lo, lp = [], []
                for i, (q, v) in enumerate(zip(qtexts, qvecs)):
                    v = v if given else None
                    for side in ((o, lo), (p, lp)) if (i + rep) % 2 == 0 else ((p, lp), (o, lo)):
                        t = time.perf_counter(); side[0](q, v); side[1].append(1000 * (time.perf_counter() - t))
                lat.setdefault((name, mode, 'ours'), []).append(lo); lat.setdefault((name, mode, 'peer'), []).append(lp)
        print(f"  pass {rep + 1} done", flush=True)

    def stat(key, p): return H.median([H.percentile(x, p) for x in lat[key]])
    rows_out, res = [], {}
    for name, given in settings_:
        for mode in pairs:
            if (name, mode, 'ours') not in lat: continue
            o50, o95, p50, p95 = stat((name, mode, 'ours'), 50), stat((name, mode, 'ours'), 95), stat((name, mode, 'peer'), 50), stat((name, mode, 'peer'), 95)
            rows_out.append([f"{name} {mode}", o50, o95, p50, p95, o50 / p50, o95 / p95])
            res[f"{name}/{mode}"] = dict(ours_p50_ms=round(o50, 3), ours_p95_ms=round(o95, 3), peer_p50_ms=round(p50, 3),
                                         peer_p95_ms=round(p95, 3), ratio_p50=round(o50 / p50, 3), ratio_p95=round(o95 / p95, 3))
    print(f"\nSearch latency in ms ({len(qtexts)} SciFact queries, {n} chunks, k={k}, threads={a.threads}, median of {a.repeats} passes):")
    print(H.table(rows_out, ['mode', 'ours p50', 'ours p95', 'peer p50', 'peer p95', 'x p50', 'x p95']))
    h = res['end-to-end/hybrid']
    ok = h['ratio_p50'] <= 1.2 and h['ratio_p95'] <= 1.2
    print(f"hybrid overhead end-to-end: p50 {h['ratio_p50']:.2f}x, p95 {h['ratio_p95']:.2f}x (target <= 1.2: {'PASS' if ok else 'FAIL'}); "
          f"search only: p50 {res['search only/hybrid']['ratio_p50']:.2f}x, p95 {res['search only/hybrid']['ratio_p95']:.2f}x", flush=True)

    profile = None
    if a.profile:
        import cProfile, pstats, io
        pr = cProfile.Profile(); pr.enable()
        for q, v in zip(qtexts, qvecs): kb.search(q, k=k, mode='hybrid', query_vector=v, groups=ALL_ACCESS)
        pr.disable()
        buf = io.StringIO(); pstats.Stats(pr, stream=buf).sort_stats('tottime').print_stats(18)
        profile = buf.getvalue()
        print("\ncProfile of our hybrid search (query vector given), by own time:\n" + profile[profile.find('ncalls') - 60:])
    results = dict(n_chunks=n, n_queries=len(qtexts), k=k, candidates=C, workspace=str(ws), latency=res,
                   dense_topk_identical_share=float(same), target_hybrid_overhead=1.2, pass_hybrid_overhead=ok)
    if tmp: shutil.rmtree(tmp, ignore_errors=True)
    H.save(a, 'bench_search', ctx, results)


if __name__ == '__main__':
    main()
