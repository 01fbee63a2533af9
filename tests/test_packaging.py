"""The project's packaging: what a fresh clone installs must match what the docs and conda file say."""
import os, re, subprocess, sys, tomllib, zipfile
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

def test_wheel_ships_the_report_templates(tmp_path):
    "A wheel (not only the editable checkout) carries nbs/reports as genai_accel.report_templates, and uses them."
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '-q', '--disable-pip-version-check', '--no-deps',
                    '--no-build-isolation', str(ROOT), '-w', str(tmp_path)], check=True, capture_output=True)
    whl = zipfile.ZipFile(next(tmp_path.glob('genai_accel-*.whl')))
    for name in ('readiness_assessment', 'model_evaluation'):
        assert f'genai_accel/report_templates/{name}.ipynb' in whl.namelist()
    site = tmp_path/'site'; whl.extractall(site)
    code = 'from genai_accel.reports import resolve_template; print(resolve_template("evaluation")[0])'
    p = subprocess.run([sys.executable, '-c', code], cwd=tmp_path, capture_output=True, text=True,
                       env={**os.environ, 'PYTHONPATH': str(site)})
    assert p.returncode == 0, p.stderr
    assert Path(p.stdout.strip()) == site/'genai_accel'/'report_templates'/'model_evaluation.ipynb', p.stdout
