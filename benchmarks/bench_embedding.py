"""Embedding throughput and quality: our Embedder vs sentence-transformers on the same model, texts and max length.

Texts: SciFact chunks cut by our Chunker, embedded as `index_text` builds them (title, newline, chunk), max
length 256 tokens. Compared, interleaved in one process (median of --repeats rounds after a warm-up):
  ours auto            Embedder with precision chosen from the CPU (bf16 autocast where AMX/AVX512-BF16 exist)
  ours fp32            Embedder forced to fp32 (the path for CPUs without bf16)
  ST defaults          SentenceTransformer(path).encode(texts): batch 32, fp32
  ST bf16 weights      the same after model.to(torch.bfloat16)          } the faster of these two is
  ST bf16 autocast     the same under torch.autocast('cpu', bfloat16)   } "ST best hand-tuned bf16"
Targets: ours auto >= 2.5x ST defaults and >= 1.0x ST best hand-tuned bf16.
Quality (full mode: every SciFact chunk, embedded twice): nDCG@10 on SciFact train with dense chunk-level
flat search aggregated to documents by the best chunk (as our index does), bf16 vs fp32 (|diff| <= 0.005),
and the cosine deviation (1 - cos) of bf16 from fp32 embeddings.
Run it alone on the machine, e.g.  .venv/bin/python benchmarks/bench_embedding.py --threads 2
"""
import sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as H
import numpy as np


def doc_ranking(Q, E, doc_ids, n_chunks:int=200, k:int=100):
    "Dense flat search over chunks, aggregated to documents by their best chunk: ranked doc ids per query."
    import faiss
    index = faiss.IndexFlatIP(E.shape[1]); index.add(E)
    _, I = index.search(Q, min(n_chunks, len(E)))
    runs = []
    for row in I:
        seen, ranked = set(), []
        for i in row:
            if i < 0: continue
            d = doc_ids[i]
            if d not in seen: seen.add(d); ranked.append(d)
            if len(ranked) == k: break
        runs.append(ranked)
    return runs


def main():
    ap = H.parser(__doc__)
    ap.add_argument('--n-texts', type=int, default=2000, help='chunks in the throughput measurement')
    ap.add_argument('--skip-quality', action='store_true', help='throughput only (the quality part embeds every chunk twice)')
    ap.add_argument('--keep-embeddings', help='save the quality run\'s embeddings (.npy) in this folder, for further analysis')
    a = ap.parse_args()
    if a.small: a.n_texts = min(a.n_texts, 48)
    ctx = H.setup(a, 'bench_embedding')
    import torch
    from sentence_transformers import SentenceTransformer
    from genai_accel.core.config import Settings
    from genai_accel.core.models import Embedder, cpu_supports_bf16
    from genai_accel.assessment.retrieval_eval import ndcg_at_k, recall_at_k

    s = Settings(env={}).with_overrides(models__threads=a.threads)
    corpus, queries, qrels = H.load_scifact(a.data)
    if a.small: corpus, queries, qrels = H.small_subset(corpus, queries, qrels, n_queries=10, n_docs=50)
    ours = Embedder(s)  # auto precision
    ours32 = Embedder(s, precision='fp32')
    chunks = H.scifact_chunks(corpus, s, tokenizer=ours.tokenizer)
    texts = [t for _, t in chunks[:a.n_texts]]
    ntok = [len(x) for x in ours.tokenizer(texts, truncation=True, max_length=ours.max_length)['input_ids']]
    print(f"{len(texts)} texts (of {len(chunks)} SciFact chunks), {np.mean(ntok):.0f} tokens on average (max {max(ntok)}); "
          f"ours: precision {ours.precision} (cpu bf16: {cpu_supports_bf16()}), batch {ours.batch_size}, max length {ours.max_length}", flush=True)

    st = SentenceTransformer(ours.path, device='cpu')
    st16 = SentenceTransformer(ours.path, device='cpu').to(torch.bfloat16)
    for m in (st, st16): m.max_seq_length = ours.max_length  # 256 already; the same limit as ours, explicitly
    st.eval(); st16.eval()

    def st_autocast(x):
        with torch.autocast('cpu', dtype=torch.bfloat16): return st.encode(x)
    variants = {'ours auto': lambda x: ours.encode(x), 'ours fp32': lambda x: ours32.encode(x),
                'ST defaults': lambda x: st.encode(x), 'ST bf16 weights': lambda x: st16.encode(x),
                'ST bf16 autocast': st_autocast}
    outputs = {}
    def timed(name):
        def run(): outputs[name] = np.asarray(variants[name](texts), dtype=np.float32)
        return run
    warm = texts[:16] if a.small else texts[:256]
    for f in variants.values(): f(warm)
    t0 = time.perf_counter()
    times = H.interleaved({k: timed(k) for k in variants}, a.repeats, warmup=0)
    med = {k: H.median(v) for k, v in times.items()}
    rate = {k: len(texts) / v for k, v in med.items()}
    st_best = max(('ST bf16 weights', 'ST bf16 autocast'), key=lambda k: rate[k])
    norm = lambda v: v / np.linalg.norm(v, axis=1, keepdims=True)
    ref = norm(outputs['ST defaults'])
    rows = []
    for k in variants:
        dev = 1 - (norm(outputs[k]) * ref).sum(1)
        rows.append([k, len(texts) / med[k], med[k], rate[k] / rate['ST defaults'], rate[k] / rate[st_best],
                     float(dev.max()), ' '.join(f"{t:.1f}" for t in times[k])])
    print(f"\nThroughput ({len(texts)} chunks, threads={a.threads}, median of {a.repeats}; timing rounds took "
          f"{time.perf_counter() - t0:.0f} s):")
    print(H.table(rows, ['variant', 'chunks/s', 'median s', 'x ST defaults', f'x ST best bf16', 'max 1-cos vs ST fp32', 'runs s']))
    r_def, r_best = rate['ours auto'] / rate['ST defaults'], rate['ours auto'] / rate[st_best]
    print(f"ST best hand-tuned bf16 = {st_best}")
    print(f"ours auto vs ST defaults: {r_def:.2f}x (target >= 2.5: {'PASS' if r_def >= 2.5 else 'FAIL'}); "
          f"vs ST best hand-tuned bf16: {r_best:.2f}x (target >= 1.0: {'PASS' if r_best >= 1.0 else 'FAIL'})", flush=True)
    results = dict(n_texts=len(texts), mean_tokens=float(np.mean(ntok)), precision_auto=ours.precision,
                   batch_size_ours=ours.batch_size, batch_size_st=32, max_length=ours.max_length,
                   throughput={k: dict(chunks_per_s=round(rate[k], 2), median_s=round(med[k], 3), runs_s=[round(t, 3) for t in times[k]],
                                       ratio_vs_st_defaults=round(rate[k] / rate['ST defaults'], 3),
                                       max_cos_dev_vs_st_fp32=float(1 - (norm(outputs[k]) * ref).sum(1).min()))
                               for k in variants},
                   st_best_bf16=st_best, ratio_vs_st_defaults=round(r_def, 3), ratio_vs_st_best_bf16=round(r_best, 3),
                   targets=dict(vs_st_defaults=2.5, vs_st_best_bf16=1.0),
                   pass_vs_st_defaults=r_def >= 2.5, pass_vs_st_best_bf16=r_best >= 1.0)
    del st, st16, outputs
    if a.skip_quality:
        H.save(a, 'bench_embedding', ctx, results); return

    # Quality: every chunk embedded by the bf16 path and by the fp32 path; the same search over each.
    all_texts = [t for _, t in chunks]
    doc_ids = [d for d, _ in chunks]
    qids = list(queries)
    qtexts = [queries[q] for q in qids]
    print(f"\nQuality: embedding {len(all_texts)} chunks and {len(qids)} queries with bf16 and fp32 ...", flush=True)
    quality = {}
    emb = {}
    for name, e in (('bf16', Embedder(s, precision='bf16')), ('fp32', ours32)):
        t = time.perf_counter()
        E, Q = e.encode(all_texts), e.encode(qtexts)
        emb[name] = (E, Q)
        if a.keep_embeddings:
            Path(a.keep_embeddings).mkdir(parents=True, exist_ok=True)
            np.save(Path(a.keep_embeddings)/f"chunks_{name}.npy", E); np.save(Path(a.keep_embeddings)/f"queries_{name}.npy", Q)
        runs = doc_ranking(Q, E, doc_ids)
        quality[name] = dict(ndcg10=float(np.mean([ndcg_at_k(r, qrels[q], 10) for r, q in zip(runs, qids)])),
                             recall100=float(np.mean([recall_at_k(r, qrels[q], 100) for r, q in zip(runs, qids)])),
                             embed_s=round(time.perf_counter() - t, 1))
        print(f"  {name}: {quality[name]['embed_s']} s", flush=True)
    dev = np.concatenate([1 - (emb['bf16'][0] * emb['fp32'][0]).sum(1), 1 - (emb['bf16'][1] * emb['fp32'][1]).sum(1)])
    diff = quality['bf16']['ndcg10'] - quality['fp32']['ndcg10']
    print(f"\nQuality on SciFact train ({len(qids)} queries, {len(all_texts)} chunks of {len(corpus)} documents; dense flat, best chunk per document):")
    print(H.table([[k, v['ndcg10'], v['recall100'], v['embed_s'], len(all_texts) / v['embed_s']] for k, v in quality.items()],
                  ['precision', 'nDCG@10', 'Recall@100', 'embed s (all)', 'chunks/s']))
    print(f"nDCG@10 bf16 - fp32 = {diff:+.4f} (target |diff| <= 0.005: {'PASS' if abs(diff) <= 0.005 else 'FAIL'})")
    print(f"cosine deviation 1-cos(bf16, fp32) over {len(dev)} chunk+query embeddings: max {dev.max():.2e}, "
          f"p99 {np.percentile(dev, 99):.2e}, p50 {np.percentile(dev, 50):.2e}", flush=True)
    results['quality'] = dict(n_queries=len(qids), n_chunks=len(all_texts), n_documents=len(corpus), **quality,
                              ndcg10_diff_bf16_minus_fp32=round(diff, 5), pass_ndcg_within_0_005=abs(diff) <= 0.005,
                              cos_dev_max=float(dev.max()), cos_dev_p99=float(np.percentile(dev, 99)),
                              cos_dev_p50=float(np.percentile(dev, 50)))
    H.save(a, 'bench_embedding', ctx, results)


if __name__ == '__main__':
    main()
