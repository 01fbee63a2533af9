"""The project's packaging: what a fresh clone installs must match what the docs and conda file say."""
import re, subprocess, sys, tomllib
from pathlib import Path
from conftest import ROOT, run_cli

def _name(req): return re.split(r'[<>=!~\[ ;]', req, 1)[0].lower().replace('_', '-')

def test_environment_yml_matches_pyproject():
    deps = tomllib.loads((ROOT/'pyproject.toml').read_text())['project']['dependencies']
    import yaml  # a dependency of papermill
    env = yaml.safe_load((ROOT/'environment.yml').read_text())
    pip = [r for d in env['dependencies'] if isinstance(d, dict) for r in d['pip'] if not r.startswith('-e')]
    assert sorted(pip, key=_name) == sorted(deps, key=_name), "environment.yml's pip list must equal pyproject's dependencies"

def test_nbdev_config_lives_in_pyproject():
    cfg = tomllib.loads((ROOT/'pyproject.toml').read_text())['tool']['nbdev']
    assert cfg['allowed_cell_metadata_keys'] == ['tags'] and 'slow' in cfg['tst_flags']

def test_console_script_installed():
    p = run_cli('--help')
    assert 'ingest' in p.stdout and 'search' in p.stdout and 'eval' in p.stdout
