"""Drift detection with known error rates, and the time of `monitor kpis` / `monitor drift` on 10k and 100k interactions.

Error rates: SciFact claims (the usual queries) against questions about Python's reference topics (the sample
corpus's subject): null trials draw both windows from the claims without overlap (every alert is a false alarm);
shift trials take the current window from the other domain entirely, or 30% of it. Each rate has a 95% Wilson
interval. Timing: a synthetic log of N interactions (questions drawn from both pools, timestamps over 7 days),
`compute_kpis` in 1 h windows and `drift_between` on two 3.5-day windows, at N = 10k and 100k in the same run.

python benchmarks/bench_drift.py [--small] [--trials 200] [--threads 2]
"""
import json, shutil, tempfile, time
from pathlib import Path
from harness import parser, setup, save, table, SCIFACT


def main():
    ap = parser(__doc__)
    ap.add_argument('--trials', type=int, default=200, help='seeded trials per condition')
    ap.add_argument('--window', type=int, default=100, help='queries per window in the error-rate trials')
    a = ap.parse_args()
    ctx = setup(a, 'bench_drift')
    import numpy as np
    from genai_accel.core.config import Settings
    from genai_accel.core.models import Embedder
    from genai_accel.monitoring.drift import drift_error_rates, python_questions, drift_between
    from genai_accel.monitoring.kpis import compute_kpis, synthetic_log, parse_time
    from pydoc_data.topics import topics
    trials = 20 if a.small else a.trials
    s = Settings(env={})
    emb = Embedder(s)
    claims = [json.loads(l)['text'] for l in open(Path(a.data)/'queries.jsonl')]
    py = python_questions()
    corpus = emb.encode([f"{k}: {' '.join(v.split()[:150])}" for k, v in sorted(topics.items())])
    t0 = time.perf_counter()
    E_c, E_p = emb.encode(claims), emb.encode(py)
    print(f"embedded {len(claims)} claims and {len(py)} Python questions in {time.perf_counter() - t0:.1f} s", flush=True)
    sc_c, sc_p = (E_c @ corpus.T).max(1), (E_p @ corpus.T).max(1)
    m = s.monitoring
    rates = drift_error_rates(E_c, E_p, sc_c, sc_p, window=a.window, trials=trials, mixes=(0.0, 1.0, 0.3),
                              alpha=m.drift_alpha, n_permutations=m.drift_permutations, topics=m.drift_topics)
    print(table([[r['kind'], f"{r['mix']:.0%}", r['trials'], r['alerts'], f"{r['rate']:.3f}", f"[{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}]", r['seconds']]
                 for r in rates], ['condition', 'other-domain share', 'trials', 'alerts', 'rate', '95% CI', 's']), flush=True)
    # timing on generated logs
    timing = []
    sizes = [2000, 10000] if a.small else [10000, 100000]
    qs = claims + py
    for n in sizes:
        ws = Path(tempfile.mkdtemp())
        start = parse_time('2026-01-01')
        t = time.perf_counter(); synthetic_log(ws, n=n, start=start, span_s=7 * 86400, seed=0, questions=qs); gen_s = time.perf_counter() - t
        t = time.perf_counter(); k = compute_kpis(ws, since=start, until=start + 7 * 86400, window='1h', settings=s, groundedness_sample=0)
        kpi_s = time.perf_counter() - t
        half = start + 3.5 * 86400
        t = time.perf_counter(); d = drift_between(ws, (start, half), (half, start + 7 * 86400), s, embedder=emb)
        drift_s = time.perf_counter() - t
        timing.append(dict(n=n, generate_s=round(gen_s, 2), kpis_s=round(kpi_s, 2), windows=len(k['windows']), drift_s=round(drift_s, 2),
                           drift=d['drift'], drift_sampled=d['details']['sampled']))
        shutil.rmtree(ws, ignore_errors=True)
    print(table([[t['n'], t['kpis_s'], t['windows'], t['drift_s'], t['drift_sampled']] for t in timing],
                ['interactions', 'monitor kpis (s)', '1h windows', 'monitor drift (s)', 'queries embedded']), flush=True)
    g = dict(kpis=round(timing[1]['kpis_s'] / max(timing[0]['kpis_s'], 1e-9), 2), drift=round(timing[1]['drift_s'] / max(timing[0]['drift_s'], 1e-9), 2))
    print(f"growth from {sizes[0]} to {sizes[1]} interactions ({sizes[1] // sizes[0]}x): kpis {g['kpis']}x, drift {g['drift']}x")
    save(a, 'bench_drift', ctx, dict(error_rates=rates, timing=timing, growth=g,
                                     settings=dict(alpha=m.drift_alpha, permutations=m.drift_permutations, topics=m.drift_topics,
                                                   max_sample=m.drift_max_sample, window=a.window)))


if __name__ == '__main__':
    main()
