"""Evaluation harness throughput: rows per minute on SciFact questions, one row at a time vs batched generation.

A SciFact subset (--questions judged train claims, their cited abstracts and filler abstracts) is ingested into a
scratch workspace; `genai_accel.assessment.evaluation.evaluate` then answers and scores every claim with the local generator
(greedy, --max-new-tokens), first with concurrency 1 (rows one after another), then with --concurrency rows in flight,
which the LocalGenerator's continuous batching decodes in shared forward passes. Both runs use separate row caches,
so each generates everything. Greedy answers should be identical between the two runs; the share is printed.
Run it alone on the machine (concurrent CPU-heavy processes distort timings).
Measured (2 threads, machine load average ~4 from other work): 100 claims took 18 min for both runs; RAG prompts
(~700 tokens of sources) make the work prefill-bound, which batching does not shorten, so the gain is far below the
3-6x of short prompts in bench_generation.py. Use --questions/--max-new-tokens for a shorter run.
"""
import shutil, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as H


def main():
    ap = H.parser(__doc__)
    ap.add_argument('--questions', type=int, default=100, help='judged claims to evaluate (--small: 8)')
    ap.add_argument('--docs', type=int, default=400, help='abstracts in the scratch workspace (--small: 60)')
    ap.add_argument('--max-new-tokens', type=int, default=32)
    ap.add_argument('--concurrency', type=int, default=16, help='rows in flight in the batched run')
    ap.add_argument('--scratch', default=None, help='parent folder of the scratch workspace (default: the temp dir)')
    a = ap.parse_args()
    ctx = H.setup(a, 'bench_evaluation')
    from genai_accel.core.config import Settings
    from genai_accel.core.models import Embedder
    from genai_accel.data.ingest import ingest
    from genai_accel.generative.generation import LocalGenerator
    from genai_accel.assessment.evaluation import evaluate, load_eval_set, gate_summary

    nq, nd = (8, 60) if a.small else (a.questions, a.docs)
    s = Settings(env={}).with_overrides(models__threads=a.threads, dedup__enabled=False, dedup__near_duplicates=False,
                                        generation__max_batch_size=max(1, a.concurrency))
    corpus, queries, qrels = H.load_scifact(a.data)
    corpus, queries, qrels = H.small_subset(corpus, queries, qrels, n_queries=nq, n_docs=nd, seed=0)
    tmp = Path(tempfile.mkdtemp(prefix='bench_evaluation-', dir=a.scratch))
    try:
        folder = H.write_beir(tmp/'scifact-subset', corpus, queries, qrels)
        emb = Embedder(s)
        t = time.perf_counter()
        ingest([folder/'corpus.jsonl'], tmp/'ws', s, embedder=emb)
        ingest_s = time.perf_counter() - t
        rows = load_eval_set(folder, split='train')
        t = time.perf_counter(); gen = LocalGenerator(s); load_s = time.perf_counter() - t
        gen.generate('Say hello.', max_new_tokens=4)  # warm-up
        print(f"{len(rows)} questions, {len(corpus)} abstracts ingested in {ingest_s:.1f} s; model loaded in {load_s:.1f} s", flush=True)
        runs = {}
        for conc in (1, a.concurrency):
            t = time.perf_counter()
            rep = evaluate(rows, ['hybrid'], tmp/'ws', s, repeats=1, out_dir=tmp/f'run-c{conc}', concurrency=conc,
                           max_new_tokens=a.max_new_tokens, generator=gen, embedder=emb)
            wall = time.perf_counter() - t
            c = rep.candidates[0]
            runs[conc] = dict(rep=rep, wall_s=wall, rows_per_min=60 * len(rows) / wall,
                              generation_rows_per_min=c['throughput']['rows_per_min'])
            print(f"concurrency {conc:>2}: {wall:.1f} s for {len(rows)} rows (incl. scoring) -> {runs[conc]['rows_per_min']:.1f} rows/min; "
                  f"answering alone {c['throughput']['rows_per_min']} rows/min", flush=True)
        seq, bat = runs[1]['rep'], runs[a.concurrency]['rep']
        same = sum(x['answer'] == y['answer'] for x, y in zip(seq.rows, bat.rows)) / len(rows)
        speedup = runs[a.concurrency]['rows_per_min'] / runs[1]['rows_per_min']
        print(f"batched / sequential: {speedup:.2f}x; identical greedy answers {same:.0%}")
        c = bat.candidates[0]
        keys = ['recall@k', 'ndcg@k', 'context_hit', 'groundedness', 'citation_precision', 'citation_recall',
                'answer_relevance', 'abstention_correct', 'abstained']
        print(H.table([[k, c['metrics'][k]['mean'] if c['metrics'][k]['mean'] is not None else float('nan'),
                        str([round(x, 3) for x in c['metrics'][k]['ci95']]) if c['metrics'][k]['ci95'] else '-']
                       for k in keys], ['metric (batched run)', 'mean', 'ci95 (bootstrap over rows)']))
        lat = seq.candidates[0]['latency']
        print('sequential latency p50/p95 s:', {k: (v['p50'], v['p95']) for k, v in lat.items()})
        print('diagnosis:', c['diagnosis'])
        results = dict(questions=len(rows), abstracts=len(corpus), max_new_tokens=a.max_new_tokens, ingest_s=round(ingest_s, 1),
                       load_s=round(load_s, 1), identical_answers=same, speedup=round(speedup, 3),
                       runs={str(k): dict(wall_s=round(v['wall_s'], 1), rows_per_min=round(v['rows_per_min'], 2),
                                          generation_rows_per_min=v['generation_rows_per_min']) for k, v in runs.items()},
                       metrics={k: c['metrics'][k]['mean'] for k in keys}, latency_sequential=lat,
                       latency_batched=c['latency'], tokens=c['tokens'], cost=c['cost'], diagnosis=c['diagnosis'],
                       gates=gate_summary(bat, s))
        H.save(a, 'bench_evaluation', ctx, results)
    finally: shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    main()
