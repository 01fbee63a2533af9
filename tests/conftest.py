import json, os, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCIFACT = ROOT.parent/'shared'/'data'/'scifact'

def cli_env(**extra):
    env = dict(os.environ, HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1', GENAI_ACCEL_SETTINGS=str(ROOT/'settings.ini'))
    env.update({k: str(v) for k, v in extra.items()})
    return env

def genai_accel_exe():
    exe = Path(sys.executable).parent/'genai-accel'
    assert exe.exists(), f"{exe} missing: install the package (make install)"
    return str(exe)

def run_cli(*args, env=None, check=True, timeout=900, cwd=None):
    "Run the installed `genai-accel` in a subprocess; returns the CompletedProcess."
    p = subprocess.run([genai_accel_exe(), *map(str, args)], capture_output=True, text=True, env=env or cli_env(),
                       timeout=timeout, cwd=cwd)
    if check and p.returncode != 0:
        raise AssertionError(f"genai-accel {' '.join(map(str, args))} exited {p.returncode}\nstdout:\n{p.stdout[-3000:]}\nstderr:\n{p.stderr[-3000:]}")
    return p

def ingest_sample_topics(tmp, topics):
    "A workspace `tmp/ws` built by `genai-accel ingest` from these topics of the sample corpus (copied to `tmp/corpus`)."
    import shutil
    from genai_accel.data.ingest import write_sample_corpus
    everything = write_sample_corpus(tmp/'all')
    (tmp/'corpus').mkdir()
    for t in topics: shutil.copy(everything/f'{t}.md', tmp/'corpus'/f'{t}.md')
    man = run_json('ingest', tmp/'corpus', '--workspace', tmp/'ws')
    assert {f['status'] for f in man['files']} == {'ingested'}
    return tmp/'ws'

def run_json(*args, **kw):
    p = run_cli(*args, '--json', **kw)
    return json.loads(p.stdout)

@pytest.fixture
def cli(): return run_cli

@pytest.fixture
def cli_json(): return run_json

@pytest.fixture(scope='session')
def scifact_evals(tmp_path_factory):
    """SciFact's train split through `eval retrieval` on the local engine, fp32, in dense, bm25 and hybrid modes: one
    ingest of the whole corpus (5,183 abstracts), shared by the retrieval floors (test_cli.py) and the Ray equality test
    (test_ray.py), so CI embeds the corpus once for both."""
    if not (SCIFACT/'corpus.jsonl').exists(): pytest.skip(f'{SCIFACT} is not present (SciFact evaluation data)')
    ws = tmp_path_factory.mktemp('scifact_local')/'ws'
    env = cli_env(GENAI_ACCEL_MODELS_EMBED_PRECISION='fp32', GENAI_ACCEL_MODELS_THREADS=2)  # fp32: the Ray test compares vectors
    res = {m: run_json('eval', 'retrieval', SCIFACT, '--split', 'train', '--mode', m, '--workspace', ws, env=env, timeout=3000)
           for m in ('dense', 'bm25', 'hybrid')}
    return dict(ws=ws, res=res)
