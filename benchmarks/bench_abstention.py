"""Abstention calibrated on labelled questions: when should the assistant refuse ("not in the provided documents")?

The assistant abstains when the evidence of the best-supporting retrieved sentence (`genai_accel.generative.rag.
sentence_evidence`: cosine similarity of the question with a sentence of the top retrieved chunks, plus a weight
times the share of the question's content words in that sentence) is below `generation.abstain_threshold`.
This script chooses `generation.abstain_lexical_weight` and `generation.abstain_threshold` on labelled data and
measures the result on questions the choice never saw:

* answerable: SciFact train claims asked against a workspace holding their cited abstracts (plus as many other
  abstracts as filler), and questions written for the sample corpus (the Python reference topics);
* unanswerable: general-knowledge questions from other domains (geography, sport, cooking, history, ...) asked
  against both workspaces, and each corpus's questions asked against the other one (Python questions to the
  biomedical abstracts, scientific claims to the Python reference);
* split by question (hash with --seed): --fit-share of the questions fit the two numbers (the weight and threshold
  maximising balanced accuracy, the threshold put midway between the neighbouring scores), the rest is held out;
* a third corpus never used in fitting: four short HR/IT policy documents written for the tests
  (tests/fixtures/policies) with questions worded differently from the answering sentence, and off-corpus ones.

Reported on the held-out questions, with Wilson 95% intervals: abstention precision (of the refusals, the share that
were unanswerable), abstention recall (of the unanswerable questions, the share refused) and the answered share of
answerable questions; next to the peer in the same run, the previous rule (best whole-chunk cosine >= 0.35) and the
whole-chunk cosine with its threshold fitted on the same fit questions. Results hold numbers only (SciFact is CC BY-NC).
"""
import hashlib, json, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as H

PYTHON_QUESTIONS = [
    'What does the break statement do?', 'What does the pass statement do?', 'What does the with statement do?',
    'How does the continue statement work?', 'What is the del statement used for?', 'What does the global statement declare?',
    'What does the nonlocal statement do?', 'How do I raise an exception?', 'What does the return statement do in a function?',
    'What does yield do inside a function?', 'How is an assert statement executed?', 'What does a lambda expression create?',
    'How does the import statement find and load a module?', 'What does the try statement specify?',
    'When does the else clause of a for loop run?', 'How does a while loop decide to keep running?',
    'What is a class definition?', 'How is a function definition executed?', 'What values count as false in a truth test?',
    'What is the difference between is and == in comparisons?', 'How do slicings select items from a sequence?',
    'What methods does a dictionary provide?', 'What is a list comprehension?', 'How are augmented assignments like += evaluated?',
    'What does the in operator test?', 'How are floating point literals written?', 'How do I write a formatted string literal?',
    'What does str.split return?', 'How are integer literals written in hexadecimal?', 'What is operator precedence in Python?',
    'What are the bitwise operators?', 'What does the power operator compute?', 'How does a conditional expression work?',
    'What is a context manager?', 'What does the __init__ method do?', 'What does the finally clause guarantee?',
    'How do shifting operations work on integers?', 'What special attribute holds an object\'s class?',
    'What is a coroutine defined with async def?', 'How are names bound and resolved in a code block?',
]
OFF_DOMAIN = [
    'Who won the 2018 FIFA World Cup?', 'What is the capital of Australia?', 'How many moons does Mars have?',
    'Who painted the Mona Lisa?', 'Which planet is known as the Red Planet?', 'Who wrote Pride and Prejudice?',
    'What is the tallest mountain in Africa?', 'In which year did the Berlin Wall fall?', 'What currency is used in Japan?',
    'How many players are on a volleyball team on court?', 'How long should I boil an egg for a soft yolk?',
    'What is a good recipe for banana bread?', 'Who composed the Four Seasons?', 'What is the longest river in South America?',
    'How do I change a flat tyre on a bicycle?', 'When did the Roman Empire fall?', 'Who was the first person to walk on the moon?',
    'What is the offside rule in football?', 'How many strings does a standard guitar have?', 'What is the capital of Canada?',
    'How do I grow tomatoes on a balcony?', 'What is the best time of year to visit Iceland?', 'Who directed the film Jaws?',
    'How much does a gallon of milk weigh?', 'What language is spoken in Brazil?', 'How do I remove a red wine stain?',
    'Who invented the telephone?', 'What are the rules of chess castling?', 'What is the population of Tokyo?',
    'How often should I water a cactus?', 'Which country has the most islands?', 'What year did the Titanic sink?',
    'How do I tie a bowline knot?', 'What is the speed limit on German motorways?', 'Who wrote the Odyssey?',
    'What is the national animal of Scotland?', 'How many calories are in an apple?', 'When is the next solar eclipse in Europe?',
    'What is the plot of Hamlet?', 'How do I train a puppy to sit?', 'Which team has won the most NBA championships?',
    'What is the exchange rate between the euro and the dollar?', 'How tall is the Eiffel Tower?',
    'Who is the author of One Hundred Years of Solitude?', 'What is the difference between a violin and a viola?',
    'How do I make a cup of pour-over coffee?', 'What is the capital of Kenya?', 'Which ocean is the deepest?',
    'How many rings are on the Olympic flag?', 'What is the best way to learn to juggle?', 'Who founded the city of Rome?',
    'What is the largest desert in the world?', 'How do I knit a scarf?', 'When was the printing press invented?',
    'What does a sommelier do?', 'How many keys does a piano have?', 'Which bird can fly backwards?',
    'What is the weather like in Lisbon in May?', 'Who won the Tour de France in 1998?', 'How do I fold a paper crane?',
]
POLICY_OFF = ['What is the capital of Australia?', 'How do I bake sourdough bread?', 'Who won the 2018 FIFA World Cup?',
              'How many moons does Jupiter have?', 'What does the break statement do in Python?',
              'Which vitamin deficiency causes scurvy?']


def split_of(question:str, seed:int, fit_share:float)->str:
    h = int(hashlib.sha256(f"{seed}:{question}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return 'fit' if h < fit_share else 'held'


class CachedEmbedder:
    "The knowledge base's embedder with a text cache: the weight grid re-scores without re-embedding."
    def __init__(self, e): self.e, self.cache = e, {}
    def encode(self, texts, **kw):
        import numpy as np
        todo = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if todo:
            for t, v in zip(todo, self.e.encode(todo, **kw)): self.cache[t] = v
        return np.stack([self.cache[t] for t in texts])


def main():
    ap = H.parser(__doc__)
    ap.add_argument('--claims', type=int, default=160, help='SciFact train claims (with evidence) used as answerable questions')
    ap.add_argument('--filler', type=int, default=300, help='uncited SciFact abstracts added to the workspace')
    ap.add_argument('--seed', type=int, default=0, help='claim sample and the fit/held-out split')
    ap.add_argument('--fit-share', type=float, default=0.5, help='share of the questions that fit the weight and threshold')
    ap.add_argument('--workdir', help='keep the workspaces here (default: a temporary folder)')
    a = ap.parse_args()
    ctx = H.setup(a, 'bench_abstention')
    import random
    import numpy as np
    from genai_accel.core.config import Settings
    from genai_accel.core.models import Embedder
    from genai_accel.core.stats import proportion_ci
    from genai_accel.data.index import KnowledgeBase, ALL_ACCESS
    from genai_accel.data.ingest import ingest, write_sample_corpus
    from genai_accel.generative.rag import sentence_evidence
    s = Settings(env={}).with_overrides(models__threads=a.threads)
    n_claims, n_filler = (30, 60) if a.small else (a.claims, a.filler)
    corpus, queries, qrels = H.load_scifact(a.data)
    full = [json.loads(l) for l in open(Path(a.data)/'queries.jsonl', encoding='utf-8') if l.strip()]
    with_ev = sorted(q['_id'] for q in full if q.get('metadata') and q['_id'] in qrels)
    rng = random.Random(a.seed)
    claims = rng.sample(with_ev, min(n_claims, len(with_ev)))
    cited = {d for q in claims for d in qrels[q]}
    others = [d['_id'] for d in corpus if d['_id'] not in cited]
    keep = cited | set(rng.sample(others, min(n_filler, len(others))))
    work = Path(a.workdir or tempfile.mkdtemp(prefix='bench_abstention_'))
    t0 = time.perf_counter()
    emb = Embedder(s)
    sci_dir = work/'scifact'; sci_dir.mkdir(parents=True, exist_ok=True)
    (sci_dir/'corpus.jsonl').write_text(''.join(json.dumps(d) + '\n' for d in corpus if d['_id'] in keep), encoding='utf-8')
    py_dir = write_sample_corpus(work/'python', limit=20 if a.small else None)
    pol_dir = H.ROOT/'tests'/'fixtures'/'policies'
    kbs = {}
    for name, folder in [('scifact', sci_dir), ('python', py_dir), ('policy', pol_dir)]:
        ws = work/f'ws-{name}'
        if not (ws/'state.sqlite').exists(): ingest([folder], ws, s, embedder=emb, progress=False)
        kbs[name] = KnowledgeBase(ws, s, embedder=emb)
    t_ingest = time.perf_counter() - t0
    pyq = PYTHON_QUESTIONS[:12] if a.small else PYTHON_QUESTIONS
    off = OFF_DOMAIN[:20] if a.small else OFF_DOMAIN
    polq = [json.loads(l)['question'] for l in open(H.ROOT/'tests'/'fixtures'/'policy_questions.jsonl') if l.strip()]
    rows = []  # (group, workspace, question, unanswerable)
    rows += [('scifact claims, own abstracts', 'scifact', queries[q], False) for q in claims]
    rows += [('python questions, sample corpus', 'python', q, False) for q in pyq]
    rows += [('other domains -> scifact', 'scifact', q, True) for q in off]
    rows += [('other domains -> python', 'python', q, True) for q in off]
    rows += [('python questions -> scifact', 'scifact', q, True) for q in pyq]
    rows += [('scifact claims -> python', 'python', queries[q], True) for q in claims]
    rows += [('policy questions (never fitted)', 'policy', q, False) for q in polq]
    rows += [('off-corpus -> policy (never fitted)', 'policy', q, True) for q in POLICY_OFF]
    cache = CachedEmbedder(emb)
    t0 = time.perf_counter()
    feats = []
    for group, wsname, q, unans in rows:
        kb = kbs[wsname]
        hits = kb.search(q, k=s.retrieval.k, groups=ALL_ACCESS, log=False)
        chunk = max((h.dense_score for h in hits if h.dense_score is not None), default=-1.0)
        feats.append(dict(group=group, ws=wsname, q=q, unans=unans, hits=hits, chunk=chunk,
                          split='never' if wsname == 'policy' else split_of(q, a.seed, a.fit_share)))
    grid = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    for f in feats:
        f['ev'] = {w: sentence_evidence(f['q'], f['hits'], cache, s, lexical_weight=w) for w in grid}
        f['score'] = {w: (e.score if e is not None else -1.0) for w, e in f['ev'].items()}
    t_feat = time.perf_counter() - t0
    fit = [f for f in feats if f['split'] == 'fit']

    def fit_threshold(scores, unans):
        "Threshold maximising balanced accuracy (abstain when score < t), midway between neighbouring scores."
        order = np.argsort(scores); sc, un = np.asarray(scores)[order], np.asarray(unans)[order]
        n_u, n_a = un.sum(), (~un).sum()
        best = (-1, None)
        for i in range(len(sc) + 1):  # abstain on the i lowest
            if 0 < i < len(sc) and sc[i] == sc[i - 1]: continue
            ba = 0.5 * (un[:i].sum() / n_u + (~un[i:]).sum() / n_a)
            t = sc[0] - 0.01 if i == 0 else sc[-1] + 0.01 if i == len(sc) else (sc[i - 1] + sc[i]) / 2
            if ba > best[0]: best = (ba, float(t))
        return best

    un_fit = np.array([f['unans'] for f in fit])
    choice = max(((fit_threshold([f['score'][w] for f in fit], un_fit), w) for w in grid), key=lambda x: (x[0][0], -x[1]))
    (ba_fit, thr), w_best = choice
    thr = round(thr, 3)
    (ba_chunk, thr_chunk) = fit_threshold([f['chunk'] for f in fit], un_fit)
    rules = {f'sentence evidence (w={w_best}, t={thr})': lambda f: f['score'][w_best] < thr,
             'whole-chunk cosine < 0.35 (previous rule)': lambda f: f['chunk'] < 0.35,
             f'whole-chunk cosine, fitted (t={thr_chunk:.3f})': lambda f: f['chunk'] < thr_chunk}

    def measure(subset, rule):
        ab = [rule(f) for f in subset]
        tp = sum(1 for f, x in zip(subset, ab) if x and f['unans']); n_ab = sum(ab)
        n_un = sum(f['unans'] for f in subset); n_an = len(subset) - n_un
        answered = sum(1 for f, x in zip(subset, ab) if not x and not f['unans'])
        r = lambda k, n: dict(k=k, n=n, value=k / n if n else None, ci=proportion_ci(k, n))
        return dict(precision=r(tp, n_ab), recall=r(tp, n_un), answered=r(answered, n_an))

    held = [f for f in feats if f['split'] == 'held']
    never = [f for f in feats if f['split'] == 'never']
    fmt = lambda m: '-' if m['value'] is None else f"{m['value']:.3f} [{m['ci'][0]:.3f}, {m['ci'][1]:.3f}] ({m['k']}/{m['n']})"
    results = dict(choice=dict(abstain_lexical_weight=w_best, abstain_threshold=thr, balanced_accuracy_fit=round(ba_fit, 4),
                               chunk_threshold_fitted=round(thr_chunk, 4), grid=grid, n_fit=len(fit)),
                   seconds=dict(ingest=round(t_ingest, 1), features=round(t_feat, 1)), rules={})
    print(f"\nfitted on {len(fit)} questions ({int(un_fit.sum())} unanswerable): abstain_lexical_weight = {w_best}, "
          f"abstain_threshold = {thr} (balanced accuracy on the fit questions {ba_fit:.3f})")
    tab = []
    for name, rule in rules.items():
        m_h, m_n = measure(held, rule), measure(never, rule)
        results['rules'][name] = dict(held_out=m_h, policy_corpus=m_n)
        tab.append([name, fmt(m_h['precision']), fmt(m_h['recall']), fmt(m_h['answered'])])
        tab.append(['  policy corpus (never fitted)', fmt(m_n['precision']), fmt(m_n['recall']), fmt(m_n['answered'])])
    print(f"\nheld-out: {len(held)} questions ({sum(f['unans'] for f in held)} unanswerable); Wilson 95% intervals")
    print(H.table(tab, ['rule', 'abstention precision', 'abstention recall', 'answerable answered']))
    rule = rules[next(iter(rules))]
    groups = {}
    for f in held + never: groups.setdefault(f['group'], []).append(f)
    gt = [[g, len(fs), f"{sum(rule(f) for f in fs) / len(fs):.3f}", f"{sum(f['chunk'] < 0.35 for f in fs) / len(fs):.3f}",
           f"{np.median([f['score'][w_best] for f in fs]):.3f}", f"{np.median([f['chunk'] for f in fs]):.3f}"] for g, fs in groups.items()]
    print('\nabstention rate by group (held-out and policy questions)')
    print(H.table(gt, ['group', 'n', 'abstained (evidence)', 'abstained (chunk < 0.35)', 'median evidence', 'median chunk cosine']))
    results['groups'] = {r[0]: dict(n=r[1], abstained=float(r[2]), abstained_previous=float(r[3])) for r in gt}
    wrong = [f for f in held + never if rule(f) != f['unans']]
    print('\nmisclassified (held-out and policy):')
    for f in wrong[:25]:
        e = f['ev'][w_best]
        print(f"  {'refused' if rule(f) else 'answered'} {f['group']}: {f['q'][:70]!r} evidence {f['score'][w_best]:.3f}"
              + (f" (cos {e.similarity:.2f}, overlap {e.overlap:.2f}: {e.sentence[:60]!r})" if e else ''))
    print(f"\nset in settings.ini [generation]: abstain_lexical_weight = {w_best}, abstain_threshold = {thr}")
    print(f"ingest {t_ingest:.0f} s, features {t_feat:.0f} s")
    H.save(a, 'bench_abstention', ctx, results)


if __name__ == '__main__':
    main()
