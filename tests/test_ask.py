"""`genai-accel ask` as a user runs it: a subprocess against a workspace built by `genai-accel ingest`."""
import re
import pytest
from conftest import run_cli, run_json, ingest_sample_topics

TOPICS = ['assert', 'break', 'continue', 'for', 'pass', 'while', 'with']
KEYS = {'answer', 'citations', 'chunks', 'abstained', 'timings', 'usage', 'prompt', 'model'}

@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('ask')
    ingest_sample_topics(tmp, TOPICS)
    return tmp/'ws'

def check_contract(d):
    assert KEYS <= set(d), sorted(KEYS - set(d))
    assert all({'n', 'chunk_id', 'source'} <= set(c) for c in d['citations'])
    assert all({'chunk_id', 'source', 'score', 'text'} <= set(c) for c in d['chunks'])
    assert {c['chunk_id'] for c in d['citations']} <= {c['chunk_id'] for c in d['chunks']}
    assert isinstance(d['abstained'], bool)
    assert re.fullmatch(r'rag_answer@\w+', d['prompt']['id']) and len(d['prompt']['sha256']) == 64

def test_off_corpus_question_abstains(workspace):
    # abstaining never loads the generator, so this runs without the model's start-up cost
    d = run_json('ask', 'Who won the 2018 World Cup?', '--workspace', workspace)
    check_contract(d)
    assert d['abstained'] is True and d['abstain_reason'] == 'weak_support'
    assert 'not in the provided documents' in d['answer'] and d['citations'] == []
    assert d['usage'] == {'prompt_tokens': 0, 'completion_tokens': 0}
    assert {'guard', 'retrieve', 'total'} <= set(d['timings'])

def test_ask_user_errors(tmp_path, workspace):
    p = run_cli('ask', 'What does pass do?', '--workspace', tmp_path/'empty', check=False)
    assert p.returncode == 2 and 'genai-accel ingest' in p.stderr
    p = run_cli('ask', 'What does pass do?', '--mode', 'fuzzy', '--workspace', workspace, check=False)
    assert p.returncode == 2 and 'dense, bm25 or hybrid' in p.stderr

@pytest.mark.slow
def test_ask_answers_with_citations(workspace):
    d = run_json('ask', 'What does the break statement do?', '--max-new-tokens', 64, '--workspace', workspace)
    check_contract(d)
    assert d['abstained'] is False, d
    assert re.search(r'\bloop\b', d['answer'].lower()), d['answer']
    assert d['citations'], d
    assert any(c['source'].endswith('break.md') for c in d['citations']), d['citations']
    assert 0 < d['usage']['completion_tokens'] <= 64
    assert {'guard', 'retrieve', 'pack', 'generate', 'total'} <= set(d['timings'])
    # text output, streamed: the same greedy answer, written once, then its sources
    human = run_cli('ask', 'What does the break statement do?', '--max-new-tokens', 64, '--workspace', workspace, '--stream').stdout
    assert human.count(d['answer']) == 1 and 'Sources:' in human.split(d['answer'])[1], human
    assert '(revised)' not in human
