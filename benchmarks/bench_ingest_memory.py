"""Peak memory of `ingest` as the corpus grows: 1x and 4x a CSV of short rows, 1x and 4x SciFact as files.

Each run is a fresh Python process (so one run's memory cannot hide in another's), measured by the child's
`ru_maxrss` (peak resident set size). Inside the child, the peak is also read just before the index build,
so the table separates the streaming pipeline (parse, clean, PII, dedup, chunk, embed, commit) from the index
build, which holds every vector (384 float32 per chunk, 1.5 KB) in memory by design (faiss flat + bm25s).

  csv      one CSV file of N rows (id, title, text; 12-20 words each, all different), 1x = 100,000 rows (14 MB),
           4x = 400,000 (58 MB; ingest.max_file_mb raised to 100 for it).
           Embedded by HashEmbedder, a cheap deterministic stand-in with the real embedder's dimension (384),
           since really embedding 400,000 rows takes hours on 2 cores; the real tokenizer still chunks.
  scifact  SciFact abstracts as one .txt file each, as bench_ingest.py writes them; 1x = 1,295 files, 4x = 5,180.
           Embedded by the real embedder (all-MiniLM-L6-v2), unless --stub-scifact.
Target: peak(4x) / peak(1x) <= 1.5. Threads: 1 (the machine is shared).
"""
import json, os, subprocess, sys, tempfile, time, shutil
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as H

CHILD = r'''
import hashlib, json, os, resource, sys, time
import numpy as np
kind, folder, ws, stub = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == '1'
import torch; torch.set_num_threads(1)
from genai_accel.core.config import Settings
import genai_accel.data.ingest
I = sys.modules['genai_accel.data.ingest']  # the package re-exports a function of the same name
s = Settings(env={}).with_overrides(ingest__max_file_mb=100)  # the 4x CSV is one 58 MB file (default limit 20 MB)
class HashEmbedder:
    "Deterministic stand-in: a unit vector from the text's hash, the real dimension; the real tokenizer."
    def __init__(self, tokenizer, dim=384):
        self.tokenizer, self.dim, self.path, self.max_length = tokenizer, dim, 'hash-embedder', 256
    def encode(self, texts, **kw):
        v = np.frombuffer(b''.join(hashlib.shake_128(t.encode()).digest(self.dim) for t in texts), np.uint8)
        v = v.reshape(len(texts), self.dim).astype(np.float32) - 127.5
        return v / np.linalg.norm(v, axis=1, keepdims=True)
if stub:
    from transformers import AutoTokenizer
    from genai_accel.core.models import resolve_embedder_path
    emb = HashEmbedder(AutoTokenizer.from_pretrained(resolve_embedder_path(s)))
else:
    from genai_accel.core.models import Embedder
    emb = Embedder(s)
rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
base = rss()
before_index = {}
_build = I.build_index
def build_index(*a, **k):
    before_index['mb'] = rss()
    return _build(*a, **k)
I.build_index = build_index
t0 = time.perf_counter()
man = I.ingest([folder], ws, s, embedder=emb)
print(json.dumps(dict(baseline_mb=base, before_index_mb=before_index.get('mb'), peak_mb=rss(), seconds=time.perf_counter() - t0,
                      counts=man.counts, chunks=sum(f.n_chunks for f in man.files),
                      rows_failed=sum(f.rows_failed for f in man.files))))
'''

WORDS = ('data model index query vector policy leave budget review travel claim office laptop meeting report '
         'security access training payroll holiday contract invoice supplier customer ticket network backup').split()


def write_csv(path:Path, n:int):
    import random
    rnd = random.Random(0)
    with open(path, 'w', encoding='utf-8') as f:
        f.write('id,title,text\n')
        for i in range(n):
            words = ' '.join(rnd.choice(WORDS) for _ in range(rnd.randint(12, 20)))
            f.write(f"r{i},Row {i},Record {i}: {words}.\n")


def run_child(kind, folder, ws, stub, threads=1):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), GENAI_ACCEL_MODELS_THREADS=str(threads),
               HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1', TOKENIZERS_PARALLELISM='false')
    env['PYTHONPATH'] = os.pathsep.join([str(H.ROOT), env.get('PYTHONPATH', '')])
    p = subprocess.run([sys.executable, '-c', CHILD, kind, str(folder), str(ws), '1' if stub else '0'],
                       capture_output=True, text=True, env=env)
    if p.returncode != 0: sys.exit(f"child failed ({kind}):\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main():
    ap = H.parser(__doc__)
    ap.add_argument('--rows', type=int, default=100_000, help='CSV rows at 1x')
    ap.add_argument('--stub-scifact', action='store_true', help='HashEmbedder for SciFact too (faster)')
    ap.add_argument('--only', choices=['csv', 'scifact'], help='run one corpus only')
    a = ap.parse_args()
    a.threads = 1
    ctx = H.setup(a, 'bench_ingest_memory')
    rows = 2_000 if a.small else a.rows
    tmp = Path(tempfile.mkdtemp(prefix='bench_ingest_memory-'))
    results, table = {}, []
    try:
        if a.only in (None, 'csv'):
            for k in (1, 4):
                d = tmp/f"csv{k}"; d.mkdir(); write_csv(d/'rows.csv', k * rows)
                mb = (d/'rows.csv').stat().st_size / 2**20
                r = run_child('csv', d, tmp/f"ws-csv{k}", stub=True); r['input_mb'] = mb; results[f"csv_{k}x"] = r
                table.append([f"csv {k}x ({k * rows:,} rows, {mb:.1f} MB) [HashEmbedder stand-in]", r['baseline_mb'],
                              r['before_index_mb'], r['peak_mb'], r['seconds'], r['chunks']])
                print(f"  csv {k}x: {r}", flush=True)
                shutil.rmtree(d); shutil.rmtree(tmp/f"ws-csv{k}", ignore_errors=True)
        if a.only in (None, 'scifact'):
            corpus, _, _ = H.load_scifact(a.data)
            n = 60 if a.small else len(corpus) // 4
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            from bench_ingest import write_corpus
            for k in (1, 4):
                d = tmp/f"sf{k}"; write_corpus(corpus[:k * n], d)
                stub = a.stub_scifact
                r = run_child('scifact', d, tmp/f"ws-sf{k}", stub=stub); results[f"scifact_{k}x"] = r
                table.append([f"scifact {k}x ({k * n:,} files) [{'HashEmbedder stand-in' if stub else 'real embedder'}]",
                              r['baseline_mb'], r['before_index_mb'], r['peak_mb'], r['seconds'], r['chunks']])
                print(f"  scifact {k}x: {r}", flush=True)
                shutil.rmtree(d); shutil.rmtree(tmp/f"ws-sf{k}", ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("\nPeak RSS of `ingest` in a fresh process (MB; ru_maxrss; 1 thread):")
    print(H.table(table, ['run', 'after imports+model', 'peak before index build', 'peak overall', 's', 'chunks']))
    ratios = {}
    for c in ('csv', 'scifact'):
        if f"{c}_1x" in results:
            r1, r4 = results[f"{c}_1x"], results[f"{c}_4x"]
            ratios[c] = dict(peak=r4['peak_mb'] / r1['peak_mb'], before_index=r4['before_index_mb'] / r1['before_index_mb'])
            print(f"{c}: peak 4x/1x = {ratios[c]['peak']:.2f} (target <= 1.5); before the index build {ratios[c]['before_index']:.2f}")
    H.save(a, 'bench_ingest_memory', ctx, dict(runs=results, ratios=ratios, csv_embedder='HashEmbedder (deterministic stand-in, dim 384)',
                                                scifact_embedder='HashEmbedder' if a.stub_scifact else 'real (all-MiniLM-L6-v2)'))


if __name__ == '__main__':
    main()
