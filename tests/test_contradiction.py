"""`genai-accel finetune contradiction` as a user runs it: a missing data folder is a usage error (exit 2), and a
tiny made-up claims folder in SciFact's layout trains a run whose model the contradiction check loads."""
import json
from pathlib import Path
import pytest
from conftest import run_cli, run_json, cli_env

def write_claims(folder:Path, n:int=12)->Path:
    "A made-up folder in SciFact's BEIR layout: abstracts, and claims whose evidence SUPPORTS or CONTRADICTS them."
    folder.mkdir(parents=True, exist_ok=True)
    things = ['copper wire', 'green tea', 'river sand', 'oak bark', 'sea salt', 'wool yarn', 'clay brick', 'rain water',
              'pine resin', 'goat milk', 'flax seed', 'iron nail', 'rice straw', 'bee wax']
    docs, claims = [], []
    for i, t in enumerate(things[:n]):
        docs.append(dict(_id=f'd{i}', title=f'A study of {t}', text=f'We measured {t} in {10 + i} samples. '
                         f'The {t} samples {"were" if i % 3 else "were not"} heavier after drying. No other effect was seen.'))
        claims.append(dict(_id=str(i), text=f'{t.capitalize()} samples are heavier after drying.',
                           metadata={f'd{i}': [dict(sentences=[1], label='CONTRADICT' if i % 3 == 0 else 'SUPPORT')]}))
    (folder/'corpus.jsonl').write_text(''.join(json.dumps(d) + '\n' for d in docs))
    (folder/'queries.jsonl').write_text(''.join(json.dumps(c) + '\n' for c in claims))
    return folder

def test_finetune_contradiction_bad_input_exits_2(tmp_path):
    p = run_cli('finetune', 'contradiction', '--out', tmp_path/'run', check=False,
                env=cli_env(GENAI_ACCEL_SCIFACT=tmp_path/'no-such-folder'))
    assert p.returncode == 2 and 'no SCIFACT_DIR given' in p.stderr and 'no-such-folder' in p.stderr, p.stderr
    (tmp_path/'empty').mkdir()
    p = run_cli('finetune', 'contradiction', tmp_path/'empty', '--out', tmp_path/'run', check=False)
    assert p.returncode == 2 and 'corpus.jsonl is missing' in p.stderr, p.stderr

@pytest.mark.slow
def test_finetune_contradiction_cli(tmp_path):
    data = write_claims(tmp_path/'claims')
    env = cli_env(GENAI_ACCEL_MODELS_THREADS=1)
    d = run_json('finetune', 'contradiction', data, '--out', tmp_path/'run', '--epochs', '1', '--holdout', '0.25', env=env)
    assert (d['n_train_claims'], d['n_heldout_claims'], d['heldout_start'], d['epochs_run']) == (9, 3, 9, 1), d
    assert d['labels'] == ['supports', 'contradicts'] and d['binary'] and min(d['label_counts'].values()) > 0, d
    run = tmp_path/'run'
    assert json.loads((run/'summary.json').read_text())['data_sha256'] == d['data_sha256']
    assert [json.loads(l)['epoch'] for l in (run/'metrics.jsonl').read_text().splitlines()] == [0, 1]
    cfg = json.loads((run/'model'/'config.json').read_text())
    assert cfg['id2label'] == {'0': 'supports', '1': 'contradicts'}
    from genai_accel.core.config import Settings
    from genai_accel.assessment.contradiction import contradiction_scorer
    sc = contradiction_scorer(Settings(env={}).with_overrides(evaluation__contradiction_model=str(run/'model')))
    r = sc.score(['Copper wire samples are heavier after drying.'], ['The copper wire samples were heavier after drying.'])[0]
    assert 0 <= r['contradiction'] <= 1 and 0 <= r['support'] <= 1
    assert abs(r['support'] + r['contradiction'] - 1) < 1e-6, r   # binary head, one window: the two probabilities
    # two runs listed in the setting are averaged (the recommended pair); a folder that is not there names the setting
    pair = contradiction_scorer(Settings(env={}).with_overrides(evaluation__contradiction_model=f"{run/'model'}, {run}"))
    r2 = pair.score(['Copper wire samples are heavier after drying.'], ['The copper wire samples were heavier after drying.'])[0]
    assert len(pair.models) == 2 and (r2['support'], r2['contradiction']) == pytest.approx((r['support'], r['contradiction']), abs=1e-6)
    with pytest.raises(ValueError, match='evaluation.contradiction_model='):
        contradiction_scorer(Settings(env={}).with_overrides(evaluation__contradiction_model=f"{run/'model'}, {tmp_path/'none'}"))
