"""What every benchmark here shares: SciFact loading, the common flags, interleaved repeated timing, tables and
the results file. Each `bench_*.py` stays a standalone script (`python benchmarks/bench_X.py [--small]`).

SciFact (BEIR layout, train split) is read from ../shared/data/scifact by default; its licence (CC BY-NC 2.0)
allows evaluation and benchmarks, never copying it into the project: results files hold numbers only.
"""
import argparse, json, os, platform, statistics, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing
os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
RESULTS = ROOT/'benchmarks'/'results'
SCIFACT = Path(os.environ.get('GENAI_ACCEL_SCIFACT', ROOT.parent/'shared'/'data'/'scifact'))


def parser(doc:str)->argparse.ArgumentParser:
    "The flags every benchmark takes."
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument('--small', action='store_true', help='a tiny run (< 1 minute) that checks the script works')
    ap.add_argument('--threads', type=int, default=2, help='torch intra-op threads (use 1 when the machine is busy)')
    ap.add_argument('--repeats', type=int, default=3, help='timed repetitions; the median is reported')
    ap.add_argument('--data', default=str(SCIFACT), help='BEIR folder (corpus.jsonl, queries.jsonl, qrels/train.tsv)')
    ap.add_argument('--out', help='results JSON (default benchmarks/results/<script>.json; --small adds _small)')
    return ap


def setup(a, name:str)->dict:
    "Apply --threads; the run's context (recorded with the results)."
    import torch
    torch.set_num_threads(a.threads)
    ctx = dict(benchmark=name, small=a.small, threads=a.threads, repeats=a.repeats, python=platform.python_version(),
               torch=torch.__version__, cpu=_cpu_model(), loadavg_before=[round(x, 2) for x in os.getloadavg()],
               started=time.strftime('%Y-%m-%d %H:%M:%S'))
    print(f"{name}: threads={a.threads} small={a.small} load average {ctx['loadavg_before']} ({os.cpu_count()} CPUs)", flush=True)
    if os.getloadavg()[0] > (os.cpu_count() or 2) * 0.75:
        print("  warning: the machine is busy; timings are noisy (ratios from the same run still compare)", flush=True)
    return ctx


def _cpu_model()->str:
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'): return line.split(':', 1)[1].strip()
    except OSError: pass
    return platform.processor()


def load_scifact(folder=SCIFACT, split:str='train'):
    "`(corpus, queries, qrels)`: corpus a list of {_id, title, text}; queries and qrels for the judged queries."
    from genai_accel.data.beir import load_beir_queries
    folder = Path(folder)
    if not (folder/'corpus.jsonl').exists():
        sys.exit(f"{folder}/corpus.jsonl not found: pass --data with a BEIR folder (or set GENAI_ACCEL_SCIFACT)")
    with open(folder/'corpus.jsonl', encoding='utf-8') as f:
        corpus = [json.loads(l) for l in f if l.strip()]
    queries, qrels = load_beir_queries(folder, split)
    return corpus, queries, qrels


def heldout_split(qids, test_fraction:float=0.2, seed:int=0)->tuple[list, list]:
    """`(fit, held_out)` query ids: THE seeded query-level split of the SciFact benchmarks (809 judged train claims ->
    647 to fit or tune on, 162 held out). Every benchmark that tunes something and reports held-out figures uses it,
    so their figures are on the same 162 claims."""
    from genai_accel.generative.finetune import split_rows
    return split_rows(sorted(qids), test_fraction, seed)


def write_beir(dest:Path, corpus:list, queries:dict, qrels:dict, split:str='train')->Path:
    "Write a BEIR folder (used for the small runs' subsets)."
    dest = Path(dest); (dest/'qrels').mkdir(parents=True, exist_ok=True)
    (dest/'corpus.jsonl').write_text('\n'.join(json.dumps(d) for d in corpus) + '\n', encoding='utf-8')
    (dest/'queries.jsonl').write_text('\n'.join(json.dumps({'_id': q, 'text': t}) for q, t in queries.items()) + '\n', encoding='utf-8')
    rows = ['query-id\tcorpus-id\tscore'] + [f"{q}\t{d}\t{r}" for q, rel in qrels.items() for d, r in rel.items()]
    (dest/'qrels'/f'{split}.tsv').write_text('\n'.join(rows) + '\n', encoding='utf-8')
    return dest


def small_subset(corpus, queries, qrels, n_queries:int=40, n_docs:int=300, seed:int=0):
    "A few judged queries, their relevant documents and filler documents: a tiny but meaningful BEIR set."
    import random
    rng = random.Random(seed)
    qids = sorted(qrels)[:n_queries]
    keep = {d for q in qids for d in qrels[q]}
    others = [d['_id'] for d in corpus if d['_id'] not in keep]
    keep |= set(rng.sample(others, max(0, n_docs - len(keep))))
    sub = [d for d in corpus if d['_id'] in keep]
    return sub, {q: queries[q] for q in qids}, {q: qrels[q] for q in qids}


def interleaved(fns:dict, repeats:int, warmup:int=1)->dict:
    "Run each callable `warmup` times, then `repeats` rounds of all of them in turn (so drifting load hits all alike); seconds per run."
    for _ in range(warmup):
        for f in fns.values(): f()
    times = {k: [] for k in fns}
    for r in range(repeats):
        keys = list(fns) if r % 2 == 0 else list(fns)[::-1]
        for k in keys:
            t = time.perf_counter(); fns[k](); times[k].append(time.perf_counter() - t)
    return times


def median(xs): return statistics.median(xs)


def percentile(xs, p:float)->float:
    import numpy as np
    return float(np.percentile(np.asarray(xs), p))


def table(rows:list[list], header:list[str])->str:
    "A plain-text table (right-aligned numbers)."
    cells = [[str(h) for h in header]] + [[c if isinstance(c, str) else f"{c:,.4g}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    w = [max(len(r[i]) for r in cells) for i in range(len(header))]
    fmt = lambda r: '  '.join(c.ljust(w[i]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(r))
    return '\n'.join([fmt(cells[0]), '  '.join('-' * x for x in w)] + [fmt(r) for r in cells[1:]])


def save(a, name:str, ctx:dict, results:dict)->Path:
    "Write the results JSON (small: numbers only, no data)."
    out = Path(a.out) if a.out else RESULTS/f"{name}{'_small' if a.small else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    ctx = dict(ctx, loadavg_after=[round(x, 2) for x in os.getloadavg()], finished=time.strftime('%Y-%m-%d %H:%M:%S'))
    out.write_text(json.dumps(dict(context=ctx, **results), indent=1, default=_num) + '\n')
    print(f"results written to {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}", flush=True)
    return out


def _num(x):
    try: return x.item()
    except AttributeError: return str(x)


def scifact_chunks(corpus:list, settings, tokenizer=None)->list:
    "Our Chunker's chunks of the SciFact documents as `(doc_id, embedded text)`, in corpus order (title + text, as `index_text` builds them)."
    from genai_accel.data.chunking import Chunker
    from genai_accel.data.index import index_text
    ch = Chunker(settings, tokenizer=tokenizer)
    return [(d['_id'], index_text(d.get('title', ''), c.text)) for d in corpus
            for c in ch.chunk(d['text'], f"default/{d['_id']}", title=d.get('title', ''))]
