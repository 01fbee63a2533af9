"""Readiness report cost: assess_data on SciFact documents at 1x, 2x and 4x a base size, with and without sampling.

The data-readiness assessment must stay cheap on large corpora: with `sample_size` the expensive dimensions
(embedding, clustering, retrieval self-test, near duplicates) work on a fixed-size seeded sample, so their
cost stops growing with the corpus and only the per-file checks (formats, sizes, exact duplicates, dates) scale.
Without sampling everything scales. The corpus is SciFact's abstracts written as one .txt file each
(distinct documents, so 4x means 4x different text, not copies).
"""
import shutil, tempfile, time
from pathlib import Path
from harness import parser, setup, load_scifact, table, save

def write_docs(dest:Path, docs:list)->Path:
    dest.mkdir(parents=True, exist_ok=True)
    for d in docs: (dest/f"{d['_id']}.txt").write_text(f"{d['title']}\n\n{d['text']}\n", encoding='utf-8')
    return dest

def main():
    ap = parser(__doc__)
    ap.add_argument('--base', type=int, default=1000, help='documents at 1x (4x must fit in 5,183)')
    ap.add_argument('--sample-size', type=int, default=300, help='sample_size for the sampled runs')
    ap.add_argument('--no-full', action='store_true', help='skip the unsampled runs (they grow with the corpus)')
    a = ap.parse_args()
    if a.small: a.base, a.sample_size = 60, 30
    ctx = setup(a, 'bench_readiness')
    from genai_accel.core.config import Settings
    from genai_accel.core.models import Embedder
    from genai_accel.assessment.readiness import assess_data
    s = Settings()
    emb = Embedder(s)
    corpus, _, _ = load_scifact(a.data)
    tmp = Path(tempfile.mkdtemp())
    rows, res = [], {}
    try:
        for f in (1, 2, 4):
            folder = write_docs(tmp/f'x{f}', corpus[:a.base * f])
            r = {}
            for label, size in [('sampled', a.sample_size)] + ([] if a.no_full else [('full', None)]):
                t = time.perf_counter()
                out = assess_data(folder, s, sample_size=size, seed=0, embedder=emb)
                r[label] = dict(seconds=round(time.perf_counter() - t, 1), score=out['score'])
                print(f"  {f}x ({a.base * f} docs) {label}: {r[label]['seconds']} s, data score {out['score']}", flush=True)
            res[f'{f}x'] = dict(n_docs=a.base * f, **r)
        base = res['1x']
        for k, v in res.items():
            rows.append([k, v['n_docs'], v['sampled']['seconds'], f"{v['sampled']['seconds'] / base['sampled']['seconds']:.2f}x",
                         v.get('full', {}).get('seconds', '-'),
                         f"{v['full']['seconds'] / base['full']['seconds']:.2f}x" if 'full' in v else '-'])
        print(table(rows, ['corpus', 'docs', f'sampled ({a.sample_size}) s', 'growth', 'unsampled s', 'growth']))
        save(a, 'bench_readiness', ctx, dict(base=a.base, sample_size=a.sample_size, results=res))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

if __name__ == '__main__':
    main()
