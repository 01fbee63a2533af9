"""Ingest throughput without embedding (walk, load, clean, boilerplate, PII, dedupe, chunk): MB/s and scaling.

Corpus: SciFact documents written out as one .txt file each (title, blank line, abstract) in a temporary folder.
Scales: 1x, 2x and 4x are *different subsets* of SciFact (the first quarter, the first half, all 5,183
documents), so every scale holds distinct real text and deduplication runs as it would in production: it is
switched on and finds only SciFact's own duplicates. (Replicating documents with a marker would make
near-duplicate detection skip the copies, and shuffled sentences stay near duplicates of their source.)

Two measurements, each the median of --repeats runs on a fresh workspace:
  pipeline   the pipeline's pieces called directly in the order `ingest` runs them (iter_files + file hash,
             load_file, normalize_text, find_boilerplate/strip_boilerplate, redact_with_settings,
             Deduplicator, Chunker.chunk), timed per stage;
  ingest()   the real entry point with a stub embedder that returns zero vectors: adds the SQLite writes
             and the index build (faiss over zero vectors, bm25s). Embedding is measured in bench_embedding.
Linear scaling means time(4x)/time(1x) ~ 4.
"""
import sys, tempfile, shutil, time
from collections import Counter, defaultdict
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as H
import numpy as np

STAGES = ('walk+hash', 'load', 'normalize', 'boilerplate', 'pii', 'dedup', 'chunk')


class ZeroEmbedder:
    "Stands in for the embedder: the real tokenizer (the chunker needs it), zero vectors."
    def __init__(self, tokenizer, dim:int=384):
        self.tokenizer, self.dim, self.path, self.max_length = tokenizer, dim, 'zero-embedder', 256
    def encode(self, texts, **kw): return np.zeros((len(texts), self.dim), dtype=np.float32)


def write_corpus(corpus:list, dest:Path)->int:
    "One .txt per document; bytes written."
    dest.mkdir(parents=True)
    n = 0
    for d in corpus:
        data = f"{d.get('title', '')}\n\n{d['text']}\n".encode('utf-8')
        (dest/f"{d['_id']}.txt").write_bytes(data); n += len(data)
    return n


def run_pipeline(folder:Path, s, tokenizer)->tuple[dict, dict]:
    "The ingest pipeline's pieces, in ingest's order; seconds per stage and counts."
    from genai_accel.data.loaders import iter_files, load_file, LoadError
    from genai_accel.data.cleaning import normalize_text, find_boilerplate, strip_boilerplate, Deduplicator
    from genai_accel.data.pii import redact_with_settings
    from genai_accel.data.chunking import Chunker
    from genai_accel.data.ingest import file_hash
    from genai_accel.data.index import doc_key
    t = defaultdict(float)
    clock = time.perf_counter
    t0 = clock()
    entries = [(e, file_hash(e.path)) for e in iter_files([folder], s.ingest.include, s.ingest.exclude, s.ingest.max_file_mb)
               if not e.skip_reason]
    t['walk+hash'] += clock() - t0
    docs = []
    for e, _ in entries:
        t0 = clock()
        try: ds = load_file(e, s, collection='default', groups=['public'])
        except LoadError: ds = []
        t1 = clock()
        for d in ds: d.text = normalize_text(d.text)
        t['load'] += t1 - t0; t['normalize'] += clock() - t1
        docs += ds
    t0 = clock()
    boiler = find_boilerplate([d.text for d in docs], s.cleaning.boilerplate_min_docs, s.cleaning.boilerplate_min_share)
    t['boilerplate'] += clock() - t0
    chunker = Chunker(s, tokenizer=tokenizer)
    dedup = Deduplicator.from_settings(s)
    pii, n_dup, n_chunks = Counter(), 0, 0
    for d in docs:
        t0 = clock()
        if boiler: d.text, _ = strip_boilerplate(d.text, boiler)
        t1 = clock()
        d.text, c = redact_with_settings(d.text, s); pii.update(c)
        d.title, c = redact_with_settings(d.title or '', s); pii.update(c)
        t2 = clock()
        key = doc_key(d.collection, d.doc_id)
        ek = dedup.exact_key(d.text)
        sig = dedup.signature(d.text) if s.dedup.near_duplicates else None
        kind, _ = dedup.check(key, d.text, signature=sig) if s.dedup.enabled else (None, None)
        if not kind: dedup.add(key, signature=sig, exact_key=ek)
        t3 = clock()
        t['boilerplate'] += t1 - t0; t['pii'] += t2 - t1; t['dedup'] += t3 - t2
        if kind: n_dup += 1; continue
        n_chunks += len(chunker.chunk(d.text, key, d.title))
        t['chunk'] += clock() - t3
    return dict(t), dict(files=len(entries), docs=len(docs), duplicates=n_dup, chunks=n_chunks,
                         pii=sum(pii.values()), boilerplate_lines=len(boiler))


def main():
    ap = H.parser(__doc__)
    ap.add_argument('--no-ingest-call', action='store_true', help='skip the ingest() end-to-end measurement')
    a = ap.parse_args()
    ctx = H.setup(a, 'bench_ingest')
    from transformers import AutoTokenizer
    from genai_accel.core.config import Settings
    from genai_accel.core.models import resolve_embedder_path
    from genai_accel.data.ingest import ingest
    s = Settings(env={})
    tokenizer = AutoTokenizer.from_pretrained(resolve_embedder_path(s))
    corpus, _, _ = H.load_scifact(a.data)
    if a.small: corpus = corpus[:240]
    n = len(corpus)
    scales = {1: corpus[:n // 4], 2: corpus[:n // 2], 4: corpus[:4 * (n // 4)]}
    tmp = Path(tempfile.mkdtemp(prefix='bench_ingest-'))
    try:
        folders, nbytes = {}, {}
        for k, docs in scales.items():
            folders[k] = tmp/f"scale{k}"; nbytes[k] = write_corpus(docs, folders[k])
        print(f"corpus: {', '.join(f'{k}x = {len(scales[k])} files, {nbytes[k]/2**20:.2f} MB' for k in scales)}", flush=True)
        ws_n = [0]
        def call_ingest(k):
            ws_n[0] += 1
            ws = tmp/f"ws{ws_n[0]}"
            man = ingest([folders[k]], ws, s, embedder=ZeroEmbedder(tokenizer))
            shutil.rmtree(ws, ignore_errors=True)
            return man
        run_pipeline(folders[1], s, tokenizer)  # warm-up: imports, regex compilation, tokenizer
        pipe, pipe_counts, ing, ing_timings, man_counts = defaultdict(list), {}, defaultdict(list), {}, {}
        for r in range(a.repeats):
            for k in (scales if r % 2 == 0 else list(scales)[::-1]):
                t0 = time.perf_counter(); st, pipe_counts[k] = run_pipeline(folders[k], s, tokenizer)
                pipe[k].append((time.perf_counter() - t0, st))
                if not a.no_ingest_call:
                    t0 = time.perf_counter(); man = call_ingest(k)
                    ing[k].append(time.perf_counter() - t0)
                    ing_timings.setdefault(k, []).append(man.timings); man_counts[k] = man.counts
                print(f"  round {r + 1} {k}x: pipeline {pipe[k][-1][0]:.2f} s" +
                      ('' if a.no_ingest_call else f", ingest() {ing[k][-1]:.2f} s"), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    med_pipe = {k: H.median([x[0] for x in v]) for k, v in pipe.items()}
    rows = []
    for k in scales:
        row = [f"{k}x", len(scales[k]), nbytes[k] / 2**20, pipe_counts[k]['chunks'], pipe_counts[k]['duplicates'],
               med_pipe[k], nbytes[k] / 2**20 / med_pipe[k], med_pipe[k] / med_pipe[1]]
        if ing: row += [H.median(ing[k]), nbytes[k] / 2**20 / H.median(ing[k]), H.median(ing[k]) / H.median(ing[1])]
        rows.append(row)
    header = ['scale', 'files', 'MB', 'chunks', 'dups', 'pipeline s', 'MB/s', 't/t(1x)']
    if ing: header += ['ingest() s', 'MB/s', 't/t(1x)']
    print(f"\nIngest without embedding (threads={a.threads}, median of {a.repeats}; dedup on, PII on):")
    print(H.table(rows, header))
    r4 = med_pipe[4] / med_pipe[1]
    print(f"scaling pipeline time(4x)/time(1x) = {r4:.2f} (linear = 4.0)" +
          (f"; ingest() {H.median(ing[4]) / H.median(ing[1]):.2f}" if ing else ''))
    # stage shares at 4x, from the median run
    runs4 = sorted(pipe[4], key=lambda x: x[0])
    stage4 = runs4[len(runs4) // 2][1]
    tot = sum(stage4.values())
    print(f"\nPer-stage time at 4x ({nbytes[4]/2**20:.2f} MB, median run):")
    print(H.table([[k, stage4.get(k, 0.0), 100 * stage4.get(k, 0.0) / tot, nbytes[4] / 2**20 / max(stage4.get(k, 0.0), 1e-9)] for k in STAGES],
                  ['stage', 's', '% of time', 'MB/s alone']))
    if ing:
        t4 = sorted(ing_timings[4], key=lambda x: x['total_s'])[len(ing_timings[4]) // 2]
        print("ingest() at 4x, its own timings: " + ', '.join(f"{k} {v:.2f}" for k, v in t4.items()) +
              " (chunk_embed_write_s includes PII, dedup, chunking, the zero embedder and SQLite writes; index_s the faiss+bm25s build)")
    results = dict(choice='scales are different SciFact subsets (1/4, 1/2, all); dedup and PII on; embedding stubbed (zeros) in ingest()',
                   scales={f"{k}x": dict(mb=round(nbytes[k] / 2**20, 3), **pipe_counts[k],
                                         pipeline_s=round(med_pipe[k], 3), pipeline_runs_s=[round(x[0], 3) for x in pipe[k]],
                                         pipeline_mb_s=round(nbytes[k] / 2**20 / med_pipe[k], 3),
                                         **({'ingest_s': round(H.median(ing[k]), 3), 'ingest_runs_s': [round(x, 3) for x in ing[k]],
                                             'ingest_mb_s': round(nbytes[k] / 2**20 / H.median(ing[k]), 3),
                                             'ingest_counts': man_counts[k]} if ing else {}))
                           for k in scales},
                   scaling_pipeline_4x_over_1x=round(r4, 3), scaling_pipeline_2x_over_1x=round(med_pipe[2] / med_pipe[1], 3),
                   stage_seconds_4x={k: round(v, 3) for k, v in stage4.items()},
                   stage_share_4x={k: round(stage4.get(k, 0.0) / tot, 4) for k in STAGES})
    if ing:
        results['scaling_ingest_4x_over_1x'] = round(H.median(ing[4]) / H.median(ing[1]), 3)
        results['ingest_timings_4x'] = {k: round(v, 3) for k, v in t4.items()}
    H.save(a, 'bench_ingest', ctx, results)


if __name__ == '__main__':
    main()
