"""The readiness report through papermill on a corpus: readiness.json carries the overall score and every dimension's
score, and (slow) on SciFact its duplicate, PII and length findings agree with direct checks."""
import json, random, shutil
from collections import Counter
from pathlib import Path

import pytest

from genai_accel.core.config import Settings
from genai_accel.reports import run_report
from genai_accel.assessment.readiness import DIMENSIONS, WEIGHTS

ROOT = Path(__file__).resolve().parents[1]
SCIFACT = ROOT.parent/'shared'/'data'/'scifact'


def _strict_json(path):
    def bad(c): raise ValueError(f"{path} holds {c}, which is not valid JSON")
    return json.loads(Path(path).read_text(), parse_constant=bad)


def _small_corpus(root: Path) -> Path:
    from genai_accel.data.ingest import write_sample_corpus
    corpus = write_sample_corpus(root/'corpus', limit=20)
    names = sorted(p.name for p in corpus.iterdir())
    (corpus/'copies').mkdir()
    shutil.copy(corpus/names[0], corpus/'copies'/names[0])
    (corpus/names[3]).write_text((corpus/names[3]).read_text() + '\nContact: ana.silva@example.org\n')
    (corpus/'empty.txt').write_bytes(b'')
    return corpus


@pytest.fixture(scope='module')
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('readiness_data')
    corpus = _small_corpus(tmp)
    r = run_report('readiness', {'data_path': str(corpus), 'sample_size': '50', 'seed': '0', 'quick': 'true',
                                 'include_generator': 'false', 'expected_users': '2'}, tmp/'out')
    return r, corpus


def test_readiness_json_has_every_score(report):
    r, corpus = report
    assert r.ok, r.error
    rep = _strict_json(r.json)
    assert 0 <= rep['overall_score'] <= 100
    assert set(rep['sections']) == {'data', 'infrastructure'}
    # the overall score combines the two sections as its rule says: their mean
    assert 'mean of the section scores' in rep['overall_rule']
    assert rep['overall_score'] == pytest.approx(sum(rep['sections'].values()) / 2, abs=0.051)
    data = rep['data']
    for d in DIMENSIONS:
        assert rep['dimensions'][f'data.{d}'] == data['scores'][d]['score']
        assert 0 <= data['scores'][d]['score'] <= 100 and data['scores'][d]['rule']
    w = sum(WEIGHTS.values())
    assert data['score'] == pytest.approx(sum(WEIGHTS[d] * data['scores'][d]['score'] for d in DIMENSIONS) / w, abs=0.051)
    assert rep['sections']['data'] == data['score']
    # the planted problems reach the report's remediation list with the files named
    acts = ' '.join(it['action'] for it in rep['remediation'] if it['dimension'].startswith('data.'))
    assert 'empty.txt' in acts and 'copies/' in acts and 'e-mail' in acts
    assert 'ana.silva@example.org' not in r.json.read_text() and 'ana.silva@example.org' not in r.html.read_text()
    assert data['corpus_chunks'] == rep['corpus_chunks']['count'] > 0



def test_readiness_html_shows_data_section(report):
    r, _ = report
    html = r.html.read_text()
    for heading in ('Data readiness', 'Data: what to fix first', 'Duplicates', 'Personal data', 'Topic coverage', 'Retrieval self-test',
                    'the synthetic-data option'):
        assert heading in html, heading
    assert 'assess_data(' not in html  # no code cells
    assert html.count('data:image/png') >= 5  # lengths, duplicates, PII, staleness, topics (+ capacity)


def test_readiness_offers_synthetic_data_for_a_small_personal_table(tmp_path):
    "A small tabular source with personal data: the report offers synthetic data, with a quick fit's measured figures."
    import numpy as np, pandas as pd
    corpus = tmp_path/'tables'; corpus.mkdir()
    (corpus/'readme.md').write_text('# Staff data\n\nThe staff table lists departments, grades and salaries.\n')
    rng = np.random.default_rng(0)
    dept = rng.choice(['sales', 'ops', 'it'], 300, p=[0.5, 0.3, 0.2])
    pd.DataFrame(dict(id=[f'e{i}' for i in range(300)], text=[f'employee record {i}' for i in range(300)], department=dept,
                      grade=rng.integers(1, 6, 300), salary=np.round(30000 + 9000 * (dept == 'it') + rng.normal(0, 3000, 300)),
                      email=[f'person{i}@corp.example' for i in range(300)])).to_csv(corpus/'staff.csv', index=False)
    r = run_report('readiness', {'data_path': str(corpus), 'sample_size': '50', 'seed': '0', 'quick': 'true',
                                 'include_generator': 'false', 'expected_users': '2'}, tmp_path/'out')
    assert r.ok, r.error
    rep = _strict_json(r.json)
    (opt,) = rep['synthetic']
    assert opt['source'] == 'staff.csv' and opt['offered'] is True, opt
    assert any(x.startswith('small: 300 rows') for x in opt['reasons']) and 'email' in opt['dropped_columns'], opt
    q = opt['quick_fit']
    assert 0 <= q['fidelity'] <= 1 and q['exact_copy_rate'] == 0 and q['dcr_ratio'] > 0, q
    assert 'person7@corp.example' not in r.json.read_text() and 'person7@corp.example' not in r.html.read_text()
    assert 'the synthetic-data option' in r.html.read_text()


@pytest.mark.slow
@pytest.mark.skipif(not (SCIFACT/'corpus.jsonl').exists(), reason='SciFact evaluation data not present')
def test_readiness_scifact_agrees_with_direct_checks(tmp_path):
    from genai_accel.data.loaders import load_beir_corpus
    from genai_accel.data.cleaning import Deduplicator, exact_key
    from genai_accel.data.pii import find_pii
    n, seed = 300, 1
    r = run_report('readiness', {'data_path': str(SCIFACT), 'sample_size': str(n), 'seed': str(seed), 'quick': 'true',
                                 'include_generator': 'false'}, tmp_path)
    assert r.ok, r.error
    rep = _strict_json(r.json)
    data = rep['data']
    print(f"SciFact report, sample {n}: {r.elapsed_s} s; data timings {data['timings']}")
    docs = load_beir_corpus(SCIFACT)
    N = len(docs)
    assert (data['source']['kind'], data['source']['n_docs'], data['source']['n_sampled']) == ('beir', N, n)
    # lengths: every document, characters as loaded
    assert data['length']['chars']['n'] == N and data['length']['chars']['total'] == sum(len(d.text) for d in docs)
    assert data['length']['chars']['max'] == max(len(d.text) for d in docs)
    # exact duplicates over all documents
    assert data['duplicates']['exact_duplicate_docs'] == N - len({exact_key(d.text) for d in docs})
    # the sample is the documented one: random.Random(seed).sample over the corpus order
    sample = [docs[i] for i in sorted(random.Random(seed).sample(range(N), n))]
    s = Settings()
    dd, kinds = Deduplicator.from_settings(s), Counter()
    for d in sample:
        kind, _ = dd.check(d.doc_id, d.text)
        if kind: kinds[kind] += 1
        else: dd.add(d.doc_id, d.text)
    assert data['duplicates']['dedup_in_sample'] == dict(exact=kinds['exact'], near=kinds['near'], kept=n - sum(kinds.values()))
    # PII on the same sample
    direct = sum((Counter(m.type for m in find_pii(d.text)) for d in sample), Counter())
    assert data['pii']['matches'] == dict(direct)
    assert data['pii']['docs_with_pii'] == sum(1 for d in sample if find_pii(d.text))
    assert data['pii']['share_docs_ci95'] is not None  # sampled: error bars reported
    # the SciFact report renders in headless Chromium (where it is installed: `make browser`)
    from test_reports import CHROMIUM, CHROMIUM_FLAGS
    if CHROMIUM:
        import subprocess
        dom = subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, '--virtual-time-budget=5000', '--dump-dom', r.html.resolve().as_uri()],
                             capture_output=True, text=True, timeout=180).stdout
        assert 'Data readiness' in dom and 'Infrastructure readiness' in dom and '<table' in dom
        assert dom.count('data:image/png;base64') >= 5
