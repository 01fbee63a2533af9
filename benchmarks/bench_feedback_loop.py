"""The feedback loop pays off on held-out queries; the interaction log costs (almost) nothing; feedback imports fast.

1. Loop (SciFact train split, read in place): the corpus is ingested with `genai-accel ingest`; the queries are split
   into a feedback part and a disjoint held-out part. The feedback part is searched with `genai-accel search
   --queries FILE --json` (so every search is a logged interaction with its id). A simulated user then marks, for
   each logged search, the shown chunks of the documents that answer the claim as relevant and the other shown
   chunks as irrelevant; when none of the shown chunks answers it, the user points at the source document's first
   chunk (the user knows the source). Those rows go in with `genai-accel feedback import`. `genai-accel improve
   embedder --out DIR` trains on the feedback only (it never sees the qrels), the workspace is re-embedded with
   `genai-accel ingest --embedder DIR`, and nDCG@10 (dense and hybrid document ranking) is measured on the held-out
   queries before and after.
2. Search latency with the interaction log on and off, interleaved in one process: p95 ratio (target <= 1.1x).
3. `import_feedback` rows/s on a file of valid rows.

`--small` runs the loop on ~400 abstracts and 160 queries (a smoke run: too few feedback queries for a reliable gain);
the full run ingests all 5,183 abstracts, takes feedback on 80% of the 809 judged train queries (647) and holds out
the other 162, and fine-tunes with the `improve embedder` defaults (3 epochs, lr 3e-5, per pair one logged and one
BM25 hard negative; the best epoch on a validation share of the feedback queries is kept).
"""
import json, os, random, shutil, subprocess, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import parser, setup, load_scifact, write_beir, small_subset, percentile, table, save, ROOT


def cli(*args, timeout=3600):
    exe = Path(sys.executable).parent/'genai-accel'
    p = subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, timeout=timeout)
    if p.returncode not in (0, 1):
        raise SystemExit(f"genai-accel {' '.join(map(str, args))} exited {p.returncode}:\n{p.stderr[-3000:]}")
    return p


def simulated_feedback(lines:list[dict], qrels:dict, first_chunk:dict)->list[dict]:
    "What a user who knows each claim's source marks on the logged search results (reads the results, not the log)."
    rows = []
    for r in lines:
        rel_docs = {d for d, v in qrels[r['id']].items() if v > 0}
        good, marked = [], set()
        for h in r['results']:  # the best-ranked shown passage of each source
            if h['doc_id'] in rel_docs and h['doc_id'] not in marked: good.append(h['chunk_id']); marked.add(h['doc_id'])
        if not good: good = [first_chunk[d] for d in sorted(rel_docs) if d in first_chunk][:1]
        if not good: continue
        rows.append(dict(interaction_id=r['interaction_id'], relevant_chunk_ids=good,
                         irrelevant_chunk_ids=[h['chunk_id'] for h in r['results'] if h['doc_id'] not in rel_docs][:5],
                         event_id=f"sim-{r['id']}"))
    return rows


def held_out_ndcg(ws:Path, queries:dict, qrels:dict, embedder_dir:str|None=None)->dict:
    from genai_accel.core.config import Settings
    from genai_accel.core.metrics import ndcg_at_k
    from genai_accel.data.index import KnowledgeBase, ALL_ACCESS
    s = Settings(env={}).with_overrides(**({'models__embedder': embedder_dir} if embedder_dir else {}))
    kb = KnowledgeBase(ws, s)
    out = {}
    for mode in ('dense', 'hybrid'):
        vals = [ndcg_at_k(kb.search_documents(queries[q], k=10, mode=mode, groups=ALL_ACCESS), qrels[q], 10) for q in sorted(queries)]
        out[mode] = round(sum(vals) / len(vals), 4)
    kb.con.close()
    return out


def loop(a, work:Path)->dict:
    corpus, queries, qrels = load_scifact(a.data)
    if a.small: corpus, queries, qrels = small_subset(corpus, queries, qrels, n_queries=160, n_docs=400)
    data = write_beir(work/'scifact', corpus, queries, qrels)
    qids = sorted(qrels); random.Random(0).shuffle(qids)
    n_fb = int(len(qids) * a.feedback_share)
    fb_q, test_q = qids[:n_fb], qids[n_fb:]
    assert not set(fb_q) & set(test_q)
    ws = work/'ws'
    t = time.perf_counter()
    reused = bool(a.reuse and (ws/'state.sqlite').exists())
    if reused:  # the same corpus, ingested by an earlier run with --keep: start the log afresh
        from genai_accel.data.store import open_store, prune_interactions
        con = open_store(ws)
        n = prune_interactions(con, retention_days=1e-9)  # every interaction, with its feedback
        con.close()
        shutil.rmtree(work/'emb', ignore_errors=True); shutil.rmtree(work/'ws_after', ignore_errors=True)
        print(f"  reusing the ingested workspace {ws} ({n} logged interactions and their feedback deleted)", flush=True)
    else:
        cli('ingest', data/'corpus.jsonl', '--workspace', ws, '--json', '--no-progress')
        print(f"  ingested {len(corpus)} abstracts in {time.perf_counter() - t:.0f} s", flush=True)
    t_ingest = time.perf_counter() - t
    (work/'queries.jsonl').write_text(''.join(json.dumps(dict(id=q, query=queries[q])) + '\n' for q in fb_q))
    lines = [json.loads(l) for l in cli('search', '--queries', work/'queries.jsonl', '--json', '--workspace', ws).stdout.splitlines() if l.strip()]
    assert len(lines) == len(fb_q) and all(l['interaction_id'] for l in lines), 'every batch search is a logged interaction'
    from genai_accel.data.store import open_store, chunk_corpus
    con = open_store(ws, readonly=True)
    first_chunk = {}
    for r in chunk_corpus(con): first_chunk.setdefault(r['doc_id'], r['chunk_id'])
    con.close()
    rows = simulated_feedback(lines, qrels, first_chunk)
    (work/'feedback.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
    imp = json.loads(cli('feedback', 'import', work/'feedback.jsonl', '--workspace', ws, '--json').stdout)
    print(f"  feedback import: {imp['counts']}", flush=True)
    before = held_out_ndcg(ws, {q: queries[q] for q in test_q}, {q: qrels[q] for q in test_q})
    t = time.perf_counter()
    qrels_dir = data/'qrels'
    hidden = data/'qrels.hidden'
    shutil.rmtree(hidden, ignore_errors=True)  # left by an interrupted run (write_beir wrote qrels/ afresh)
    qrels_dir.rename(hidden)  # improve embedder sees the workspace (log + feedback) and nothing else
    try: p = cli('improve', 'embedder', '--out', work/'emb', *(['--epochs', a.epochs] if a.epochs else []), '--workspace', ws, '--json')
    finally: hidden.rename(qrels_dir)
    if p.returncode: raise SystemExit(p.stdout[-2000:] + p.stderr[-2000:])
    improve = json.loads(p.stdout)
    t_train = time.perf_counter() - t
    ws2 = work/'ws_after'
    shutil.copytree(ws, ws2)
    cli('ingest', data/'corpus.jsonl', '--workspace', ws2, '--embedder', work/'emb', '--json', '--no-progress')  # re-embeds every chunk
    after = held_out_ndcg(ws2, {q: queries[q] for q in test_q}, {q: qrels[q] for q in test_q}, str(work/'emb'))
    res = dict(n_docs=len(corpus), n_feedback_queries=len(fb_q), n_held_out=len(test_q), feedback_rows=len(rows),
               import_counts=imp['counts'], improve=improve, held_out_before=before, held_out_after=after,
               ratio={m: round(after[m] / before[m], 4) for m in before}, ingest_s=round(t_ingest, 1), train_s=round(t_train, 1),
               reused_workspace=reused)
    print(f"  improve embedder: {improve['n_queries']} feedback questions ({improve['n_train_queries']} train / "
          f"{improve['n_val_queries']} validation), {improve['n_logged_negatives']} logged hard negatives, validation nDCG@10 "
          f"{improve['before']['val_ndcg10']} -> {improve['after']['val_ndcg10']} (best epoch {improve['best_epoch']}), {t_train:.0f} s", flush=True)
    print(table([[m, before[m], after[m], res['ratio'][m]] for m in before], ['held-out nDCG@10', 'before', 'after', 'ratio']), flush=True)
    return res


def log_overhead(a, work:Path)->dict:
    "p95 search latency with the log on vs off, interleaved, same KnowledgeBase and queries."
    from genai_accel.core.config import Settings
    from genai_accel.data.index import KnowledgeBase, ALL_ACCESS
    from genai_accel.data.store import flush_interaction_logs
    ws = work/'ws'
    kb = KnowledgeBase(ws, Settings(env={}))
    qs = [json.loads(l)['query'] for l in (work/'queries.jsonl').read_text().splitlines()][:100] * (1 if not a.small else 2)
    kb.search(qs[0], groups=ALL_ACCESS, log=False)
    on, off = [], []
    for i, q in enumerate(qs):
        for log in ((True, False) if i % 2 else (False, True)):
            t = time.perf_counter(); kb.search(q, k=10, groups=ALL_ACCESS, log=log); (on if log else off).append(time.perf_counter() - t)
    flush_interaction_logs()
    res = dict(n=len(qs), p50_on_ms=round(percentile(on, 50) * 1000, 2), p50_off_ms=round(percentile(off, 50) * 1000, 2),
               p95_on_ms=round(percentile(on, 95) * 1000, 2), p95_off_ms=round(percentile(off, 95) * 1000, 2))
    res['p95_ratio'] = round(res['p95_on_ms'] / res['p95_off_ms'], 3)
    print(table([['log on', res['p50_on_ms'], res['p95_on_ms']], ['log off', res['p50_off_ms'], res['p95_off_ms']]],
                ['search', 'p50 ms', 'p95 ms']) + f"\n  p95 ratio on/off {res['p95_ratio']} (target <= 1.1)", flush=True)
    return res


def import_rate(a, work:Path)->dict:
    from genai_accel.core.config import Settings
    from genai_accel.data.store import open_store
    from genai_accel.feedback import import_feedback
    ws = work/'ws'
    con = open_store(ws, readonly=True)
    ids = [r[0] for r in con.execute("SELECT id FROM interactions")]
    con.close()
    n = 2000 if a.small else 10000
    f = work/'bulk.jsonl'
    f.write_text(''.join(json.dumps(dict(interaction_id=ids[i % len(ids)], rating=1 + i % 5, comment=f'row {i}')) + '\n' for i in range(n)))
    rep = import_feedback(f, ws, Settings(env={}))
    res = dict(rows=n, stored=rep.counts.get('stored', 0), seconds=round(rep.elapsed_s, 2), rows_per_s=round(n / rep.elapsed_s))
    print(f"  feedback import: {n} rows in {rep.elapsed_s:.2f} s = {res['rows_per_s']} rows/s", flush=True)
    return res


if __name__ == '__main__':
    ap = parser(__doc__)
    ap.add_argument('--epochs', type=int, default=None, help='most epochs (default: improve embedder\'s, finetune.embedder_epochs)')
    ap.add_argument('--feedback-share', type=float, default=0.8, help='share of the judged queries used for feedback; the rest is held out')
    ap.add_argument('--keep', help='keep the work folder here')
    ap.add_argument('--reuse', action='store_true', help='with --keep: reuse the workspace an earlier run ingested there (its log and feedback are deleted first)')
    a = ap.parse_args()
    ctx = setup(a, 'bench_feedback_loop')
    os.environ['GENAI_ACCEL_MODELS_THREADS'] = str(a.threads)  # the CLI subprocesses too
    work = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix='bench_feedback_'))
    work.mkdir(parents=True, exist_ok=True)
    try:
        res = dict(loop=loop(a, work), log_overhead=log_overhead(a, work), feedback_import=import_rate(a, work))
        save(a, 'bench_feedback_loop', ctx, res)
    finally:
        if not a.keep: shutil.rmtree(work, ignore_errors=True)
