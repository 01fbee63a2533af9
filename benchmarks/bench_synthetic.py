"""Synthetic tabular data: fidelity, utility, privacy and fit time of our TVAE-like VAE and CTGAN-like GAN against the
independent-columns baseline and, where SDV is importable, SDV's TVAE and CTGAN on the same data and epochs, in one run.

Data: scikit-learn's bundled wine table (178 rows, 13 numeric columns, the cultivar as a categorical target) and the ten
"mean" measurements of its breast cancer table with the diagnosis (569 rows). Each is split 70/30 (seeded): every
generator fits on the 70% and samples as many rows; `evaluate_synthetic` scores the samples against the 70% with the
30% as held-out real rows. SDV is never a dependency: install it into a throwaway virtual environment
(`python -m venv /tmp/sdvenv && /tmp/sdvenv/bin/pip install torch==2.13.0 sdv`, measured with SDV 2.0.0 / ctgan 0.12.1)
and pass `--sdv-python /tmp/sdvenv/bin/python`: SDV then fits in a subprocess on the same training CSV with the same
epochs (its own defaults otherwise: batch 500, CTGAN pac 10 and 256-wide layers; fit time includes its preprocessing).
"""
import json, os, subprocess, sys, tempfile, textwrap, time
from pathlib import Path
from harness import parser, setup, table, save

SDV_SCRIPT = textwrap.dedent('''
    import json, sys, time, warnings, pandas as pd, torch
    warnings.simplefilter('ignore')
    torch.set_num_threads(int(sys.argv[5]))
    from sdv.metadata import Metadata
    from sdv.single_table import TVAESynthesizer, CTGANSynthesizer
    train = pd.read_csv(sys.argv[1]); epochs = int(sys.argv[3]); kind = sys.argv[4]
    md = Metadata.detect_from_dataframes({'table': train})
    cls = TVAESynthesizer if kind == 'tvae' else CTGANSynthesizer
    m = cls(md, epochs=epochs, enforce_rounding=True, enable_gpu=False)
    t = time.perf_counter(); m.fit({'table': train}); fit_s = time.perf_counter() - t  # SDV 2 takes {table: frame}
    out = m.sample(len(train)); out = out['table'] if isinstance(out, dict) else out
    out.to_csv(sys.argv[2], index=False)
    print(json.dumps(dict(fit_seconds=fit_s)))
''')

def datasets():
    from sklearn.datasets import load_wine, load_breast_cancer
    w, b = load_wine(as_frame=True), load_breast_cancer(as_frame=True)
    wine = w.frame.assign(target=w.frame['target'].map(dict(enumerate(w.target_names))))
    bc = b.frame[list(b.feature_names[:10]) + ['target']].assign(target=b.frame['target'].map(dict(enumerate(b.target_names))))
    return {'wine': wine, 'breast_cancer': bc}

def main():
    ap = parser(__doc__)
    ap.add_argument('--vae-epochs', type=int, default=300)
    ap.add_argument('--gan-epochs', type=str, default='wine=800,breast_cancer=250', help='per data set, NAME=N,...')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--sdv-python', help='python of a virtual environment where SDV is installed')
    a = ap.parse_args()
    gan_epochs = {k: int(v) for k, v in (p.split('=') for p in a.gan_epochs.split(','))}
    if a.small: a.vae_epochs, gan_epochs = 20, {k: 20 for k in gan_epochs}
    ctx = setup(a, 'bench_synthetic')
    from genai_accel.generative.synthetic import make_synthesizer
    from genai_accel.assessment.synthetic_eval import evaluate_synthetic, split_holdout
    sdv_python = a.sdv_python
    if sdv_python is None:
        try:
            import sdv  # noqa: F401  (this interpreter has SDV)
            sdv_python = sys.executable
        except ImportError: pass
    sdv_note = (f"SDV from {sdv_python}" if sdv_python else
                "SDV not importable here and no --sdv-python given: its rows are missing")
    print(sdv_note, flush=True)
    rows, res, tmp = [], {}, Path(tempfile.mkdtemp())
    for name, df in datasets().items():
        train, holdout = split_holdout(df, 0.3, a.seed)
        train.to_csv(tmp/f'{name}_train.csv', index=False)
        runs = [('independent', None), ('vae', a.vae_epochs), ('gan', gan_epochs.get(name, 300))]
        if sdv_python: runs += [('sdv_tvae', a.vae_epochs), ('sdv_ctgan', gan_epochs.get(name, 300))]
        for model, epochs in runs:
            import pandas as pd
            if model.startswith('sdv_'):
                out = tmp/f'{name}_{model}.csv'
                p = subprocess.run([sdv_python, '-c', SDV_SCRIPT, str(tmp/f'{name}_train.csv'), str(out), str(epochs), model[4:], str(a.threads)],
                                   capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS=str(a.threads)))
                if p.returncode != 0:
                    print(f"  {model} failed: {p.stderr.strip().splitlines()[-1] if p.stderr.strip() else p.returncode}", flush=True); continue
                fit_s = json.loads(p.stdout.strip().splitlines()[-1])['fit_seconds']
                synth, ran = pd.read_csv(out), epochs
            else:
                m = make_synthesizer(model, epochs=epochs, seed=a.seed)
                t = time.perf_counter(); m.fit(train); fit_s = time.perf_counter() - t
                synth, ran = m.sample(len(train), seed=a.seed + 1), m.history.get('epochs_run')
            r = evaluate_synthetic(train, synth, 'target', holdout, a.seed)
            f, u, pv = r['fidelity'], r['utility'], r['privacy']
            res.setdefault(name, {})[model] = dict(fidelity=f['score'], marginal=f['marginal'], pairwise=f['pairwise'],
                                                   utility_ratio=u['ratio'], exact_copy_rate=pv['exact_copy_rate'],
                                                   dcr_ratio=pv['dcr_ratio'], membership_auc=pv['membership_auc'],
                                                   fit_seconds=round(fit_s, 2), epochs=epochs, epochs_run=ran)
            rows.append([name, model, f'{ran}/{epochs}' if epochs else '-', f['score'], f['marginal'], f['pairwise'], u['ratio'],
                         pv['exact_copy_rate'], pv['dcr_ratio'], pv['membership_auc'], round(fit_s, 1)])
            print(f"  {name} {model}: done in {fit_s:.1f} s", flush=True)
    print(table(rows, ['data', 'model', 'epochs run/max', 'fidelity', 'marginal', 'pairwise', 'utility', 'copies', 'dcr_ratio',
                       'mia_auc', 'fit_s']))
    save(a, 'bench_synthetic', dict(ctx, sdv=sdv_note), dict(results=res))

if __name__ == '__main__':
    main()
