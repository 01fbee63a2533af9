"""`genai-accel finetune generator|embedder` as a user runs them: tiny data, one epoch, the run folder checked,
and the tuned embedder used through `--embedder` (the notebook covers the adapter in `LocalGenerator`)."""
import json
from pathlib import Path
import pytest
from conftest import run_cli, run_json, cli_env

def write_jsonl(path, rows):
    Path(path).write_text(''.join(json.dumps(r) + '\n' for r in rows), encoding='utf-8')
    return path

def test_finetune_bad_input_exits_2_naming_the_line(tmp_path):
    bad = tmp_path/'pairs.jsonl'
    bad.write_text('{"prompt": "a", "response": "b"}\n{"prompt": "a"}\n')
    p = run_cli('finetune', 'generator', bad, '--out', tmp_path/'run', check=False)
    assert p.returncode == 2 and 'pairs.jsonl line 2' in p.stderr and "'response'" in p.stderr, p.stderr
    p = run_cli('finetune', 'embedder', tmp_path/'missing.jsonl', '--out', tmp_path/'run', check=False)
    assert p.returncode == 2 and 'missing.jsonl' in p.stderr, p.stderr

@pytest.mark.slow
def test_finetune_generator_cli(tmp_path):
    from genai_accel.generative.finetune import order_format_pairs
    pairs = write_jsonl(tmp_path/'orders.jsonl', order_format_pairs(10))
    env = cli_env(GENAI_ACCEL_FINETUNE_GENERATOR_EPOCHS=1, GENAI_ACCEL_MODELS_THREADS=1)
    summary = run_json('finetune', 'generator', pairs, '--out', tmp_path/'run', env=env)
    assert (summary['n_train'], summary['n_val'], summary['epochs_run']) == (8, 2, 1)
    run = tmp_path/'run'
    assert (run/'adapter'/'adapter_config.json').is_file() and (run/'config.json').is_file()
    assert json.loads((run/'summary.json').read_text())['data_sha256'] == summary['data_sha256']
    assert len((run/'metrics.jsonl').read_text().splitlines()) == 1

@pytest.mark.slow
def test_finetune_embedder_cli(tmp_path):
    topics = ['cats purr', 'the sky is blue', 'pandas eat bamboo', 'cheetahs run fast', 'bees make honey', 'ice floats']
    rows = [dict(query=f'why {t}?', passage=f'An explanation of why {t}, with details {i}.') for i, t in enumerate(topics)]
    pairs = write_jsonl(tmp_path/'qp.jsonl', rows)
    env = cli_env(GENAI_ACCEL_FINETUNE_EMBEDDER_EPOCHS=1, GENAI_ACCEL_FINETUNE_EMBEDDER_BATCH_SIZE=4, GENAI_ACCEL_MODELS_THREADS=1)
    summary = run_json('finetune', 'embedder', pairs, '--out', tmp_path/'run', env=env)
    assert summary['n_train_queries'] + summary['n_val_queries'] == 6 and summary['epochs_run'] == 1
    model = tmp_path/'run'/'model'
    assert (model/'config.json').is_file() and (model/'modules.json').is_file()
    rows = [json.loads(l) for l in (tmp_path/'run'/'metrics.jsonl').read_text().splitlines()]
    assert [r['epoch'] for r in rows] == [0, 1]
    # the tuned model serves as the workspace's embedder
    from genai_accel.data.ingest import write_sample_corpus
    corpus = write_sample_corpus(tmp_path/'corpus', 5)
    man = run_json('ingest', corpus, '--workspace', tmp_path/'ws', '--embedder', model)
    assert man['n_embedded'] > 0
