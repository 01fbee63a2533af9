"""Answers people can trust, through `genai-accel ask --json` as a user runs it: a question whose answer is stated in
a retrieved chunk, worded differently from the sentence that answers it, is answered with a citation to that
document; an off-corpus question is refused without calling the model (issue 18).

Two corpora: four short HR/IT policy documents written for these tests (tests/fixtures/policies, never used to
calibrate the abstention threshold: see benchmarks/bench_abstention.py) and a few topics of the sample corpus.
SmolLM2-135M writes the answers (greedy, few new tokens)."""
import json
from pathlib import Path
import pytest
from conftest import run_json, ingest_sample_topics

FIXTURES = Path(__file__).parent/'fixtures'
POLICY_QUESTIONS = [json.loads(l) for l in (FIXTURES/'policy_questions.jsonl').read_text().splitlines() if l.strip()]
OFF_CORPUS = ['What is the capital of Australia?', 'Who won the 2018 FIFA World Cup?', 'How do I bake sourdough bread?']
SAMPLE_QUESTIONS = {  # worded differently from the sentence that answers them; the loop topics state both too
    'Which statement ends the innermost loop early?': ('break.md', 'for.md', 'while.md'),
    'How can I skip the rest of the current loop iteration?': ('continue.md', 'for.md', 'while.md'),
}


@pytest.fixture(scope='module')
def policy_ws(tmp_path_factory):
    ws = tmp_path_factory.mktemp('trust')/'ws'
    man = run_json('ingest', FIXTURES/'policies', '--workspace', ws)
    assert {f['status'] for f in man['files']} == {'ingested'}, man
    return ws


@pytest.fixture(scope='module')
def sample_ws(tmp_path_factory):
    return ingest_sample_topics(tmp_path_factory.mktemp('trust-sample'), ['break', 'continue', 'pass', 'while', 'for', 'with'])


def ask(ws, q):
    return run_json('ask', q, '--max-new-tokens', 48, '--workspace', ws)


def check_answered(ws, questions):
    """Every question passes the evidence check and reaches the model (never refused as off-corpus), and most answers
    cite the document that states the answer. SmolLM2-135M sometimes answers with no words of its sources ("The answer
    is: 2"), which no citation can be attributed to; that is the model's weakness, measured here, not hidden."""
    outcomes = []
    for q, doc in questions:
        d = ask(ws, q)
        assert d['abstain_reason'] != 'weak_support', (q, d['evidence'])
        assert d['evidence']['score'] > 0 and d['evidence']['sentence']
        docs = (doc,) if isinstance(doc, str) else doc
        cited = not d['abstained'] and any(c['source'].endswith(docs) for c in d['citations'])
        outcomes.append((q, cited, d['answer'][:100], [Path(c['source']).name for c in d['citations']]))
    print(*outcomes, sep='\n')
    assert sum(o[1] for o in outcomes) >= (2 * len(outcomes) + 2) // 3, outcomes  # at least two thirds


def test_off_corpus_refused(policy_ws, sample_ws):
    for ws in (policy_ws, sample_ws):
        for q in OFF_CORPUS:
            d = ask(ws, q)
            assert d['abstained'] is True and d['abstain_reason'] == 'weak_support', (q, d['evidence'])
            assert d['citations'] == [] and d['usage']['completion_tokens'] == 0


def test_policy_evidence_found(policy_ws):
    "Abstention alone (no model needed to decide): every answerable policy question passes the evidence threshold."
    from genai_accel.core.config import Settings
    from genai_accel.data.index import KnowledgeBase, ALL_ACCESS
    from genai_accel.generative.rag import sentence_evidence
    s = Settings(env={})
    kb = KnowledgeBase(policy_ws, s)
    for row in POLICY_QUESTIONS:
        hits = kb.search(row['question'], groups=ALL_ACCESS, log=False)
        e = sentence_evidence(row['question'], hits, kb.embedder, s)
        assert e.score >= s.generation.abstain_threshold, (row, e)
        assert any(h.doc_id == row['doc'] for h in hits[:3]), (row, [h.doc_id for h in hits[:3]])


@pytest.mark.slow
def test_policy_questions_answered_with_citation(policy_ws):
    check_answered(policy_ws, [(r['question'], r['doc']) for r in POLICY_QUESTIONS[::2]])  # six of twelve: the model's time


@pytest.mark.slow
def test_sample_questions_answered_with_citation(sample_ws):
    check_answered(sample_ws, list(SAMPLE_QUESTIONS.items()))


@pytest.mark.xfail(strict=True, reason="known miss (issue 18): a paraphrase sharing no term with its answer sentence scores "
                   "0.368, under the calibrated threshold 0.406; the calibration set lacks such paraphrases")
def test_paraphrase_without_shared_terms(sample_ws):
    d = run_json('ask', 'How do I write a statement that does nothing at all?', '--max-new-tokens', 8, '--workspace', sample_ws)
    assert d['abstain_reason'] != 'weak_support', d['evidence']
