"""The documentation: the home notebook follows the README, and `make docs`'s command builds the site offline."""
import json, os, re, subprocess, sys
from pathlib import Path
import pytest
from conftest import ROOT, run_cli

def _notebook_text(name='index.ipynb', kind=None):
    nb = json.loads((ROOT/'nbs'/name).read_text())
    return '\n'.join(''.join(c['source']) for c in nb['cells'] if kind is None or c['cell_type'] == kind)

def test_tour_follows_the_readme():
    "Every command of the README's 'Using it' block is in the tour (or named there as not in it); every layer package is imported."
    readme = (ROOT/'README.md').read_text()
    block = readme.split('## Using it', 1)[1].split('```bash', 1)[1].split('```', 1)[0]
    commands = sorted({m for m in re.findall(r'^genai-accel (\w[\w-]*)', block, re.M)})
    assert len(commands) >= 5, commands
    tour = _notebook_text()
    missing = [c for c in commands if f'genai-accel {c}' not in tour]
    assert not missing, f"README commands the tour neither shows nor names as left out: {missing}"
    cli = run_cli('--help').stdout
    for c in sorted(set(re.findall(r'`genai-accel ([a-z][\w-]*)', tour))):
        assert re.search(rf'│ {re.escape(c)}\s', cli), f"the tour names `genai-accel {c}`, which the CLI does not have"
    code = _notebook_text(kind='code')
    import importlib.util, tomllib
    layers = tomllib.loads((ROOT/'pyproject.toml').read_text())['tool']['importlinter']['contracts'][0]['layers']
    layer_names = {n.strip().split('.', 1)[1] for line in layers for n in line.split(':')}  # the architecture's layers
    pkgs = sorted({p for p in re.findall(r'genai_accel\.(\w+)', readme) if p in layer_names
                   and (spec := importlib.util.find_spec(f'genai_accel.{p}')) and spec.submodule_search_locations})
    assert {'data', 'generative', 'assessment'} <= set(pkgs), pkgs
    unused = [p for p in pkgs if not re.search(rf'from genai_accel\.{p}\b', code)]
    assert not unused, f"layer packages the README names that the tour never imports: {unused}"

@pytest.mark.slow
def test_docs_site_builds_offline(tmp_path):
    "`make docs` runs `mkdocs build`: the site has the home notebook as its front page and an API page from the docments."
    env = {**os.environ, 'NO_MKDOCS_2_WARNING': '1', 'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1'}
    assert 'mkdocs build' in (ROOT/'Makefile').read_text()
    p = subprocess.run([str(Path(sys.executable).parent/'mkdocs'), 'build', '-q', '-f', str(ROOT/'mkdocs.yml'), '-d', str(tmp_path/'site')],
                       cwd=ROOT, capture_output=True, text=True, env=env, timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    front = (tmp_path/'site'/'index.html').read_text()
    assert 'guided tour' in front and 'Tour finished' in front  # nbs/index.ipynb, rendered
    api = (tmp_path/'site'/'api'/'interfaces'/'index.html').read_text()
    assert 'CorpusExplorer' in api and 'the workspace folder (only read)' in api  # a docment of a parameter
    assert (tmp_path/'site'/'notebooks'/'93_widgets'/'index.html').is_file()
    assert 'fonts.googleapis' not in front  # opens offline (theme font off)
