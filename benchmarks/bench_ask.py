"""End-to-end `ask` latency by stage on the bundled sample corpus: guard, retrieve, pack, generate (and time to first token).

The sample corpus (CPython's language-reference topics) is ingested into a fresh workspace, then every demo question
is asked --repeats times one after another (no concurrency: the latency one user sees). Reported per stage:
median and p95 seconds over all asks, the share of the total, and tokens in/out; abstentions are counted apart
(they stop after retrieval). Greedy decoding, generation.max_new_tokens from settings unless --max-new-tokens.
Peer for the generate stage: plain `model.generate` on the same rendered prompt (the floor a hand-written
pipeline pays), printed as a ratio.
Run it alone on the machine, e.g.  .venv/bin/python benchmarks/bench_ask.py --threads 2
"""
import sys, tempfile, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as H
import numpy as np


def main():
    ap = H.parser(__doc__)
    ap.add_argument('--max-new-tokens', type=int, default=None, help='answer length limit (default generation.max_new_tokens)')
    a = ap.parse_args()
    ctx = H.setup(a, 'bench_ask')
    import torch
    from genai_accel.core.config import Settings
    from genai_accel.data.ingest import ingest, write_sample_corpus
    from genai_accel.generative.rag import Assistant, demo_questions, pack_context

    s = Settings(env={}).with_overrides(models__threads=a.threads)
    if a.max_new_tokens: s = s.with_overrides(generation__max_new_tokens=a.max_new_tokens)
    questions = demo_questions() + ['What is the capital of Australia?']
    repeats = 1 if a.small else a.repeats
    if a.small: questions = questions[:2]
    with tempfile.TemporaryDirectory() as d:
        ws = Path(d)/'ws'
        t = time.perf_counter()
        man = ingest([write_sample_corpus(Path(d)/'corpus')], ws, s, progress=False)
        ingest_s = time.perf_counter() - t
        print(f"ingested the sample corpus in {ingest_s:.1f} s: {man.summary()}", flush=True)
        asst = Assistant(ws, s)
        t = time.perf_counter(); asst.generator; load_s = time.perf_counter() - t
        asst.ask(questions[0], groups=ALL_ACCESS)  # warm-up: first calls pay one-off allocation costs
        answers = [asst.ask(q, groups=ALL_ACCESS) for _ in range(repeats) for q in questions]
        # the peer for the generate stage: model.generate on each answered question's rendered prompt
        gen = asst.generator
        peer = []
        for ans in answers[:len(questions)]:
            if ans.abstained: continue
            hits = {h.chunk_id: h for h in ans.chunks}
            g = s.generation
            _, rendered, _ = pack_context(ans.question, [hits[c] for c in ans.packed], gen, asst.template,
                                          int(g.context_tokens) - int(g.max_new_tokens))
            ids = gen.tok.apply_chat_template(rendered.messages, add_generation_prompt=True, return_tensors='pt', return_dict=True)
            with torch.inference_mode():
                t = time.perf_counter()
                out = gen.model.generate(**ids, max_new_tokens=int(g.max_new_tokens), do_sample=False)
                el = time.perf_counter() - t
            peer.append((el, int(out.shape[1] - ids['input_ids'].shape[1]), ans.timings['generate'], ans.usage['completion_tokens']))
    answered = [x for x in answers if not x.abstained]
    stages = ['guard', 'retrieve', 'pack', 'ttft', 'generate', 'total']
    rows = []
    for st in stages:
        xs = [x.timings[st] for x in (answered if st in ('pack', 'ttft', 'generate') else answers) if st in x.timings]
        if xs: rows.append([st, len(xs), H.median(xs), H.percentile(xs, 95)])
    tot = H.median([x.timings['total'] for x in answered]) if answered else float('nan')
    print(f"\n{len(answers)} asks ({len(questions)} questions x {repeats}), {len(answered)} answered, "
          f"{len(answers) - len(answered)} abstained; generator load {load_s:.1f} s")
    print(H.table(rows, ['stage', 'n', 'median s', 'p95 s']))
    tin = [x.usage['prompt_tokens'] for x in answered]; tout = [x.usage['completion_tokens'] for x in answered]
    if answered: print(f"tokens in median {np.median(tin):.0f}, out median {np.median(tout):.0f}; "
                       f"generate share of an answered ask: {H.median([x.timings['generate'] for x in answered]) / tot:.0%}")
    ratio = None
    if peer:
        ours_tps = sum(p[3] for p in peer) / sum(p[2] for p in peer)
        peer_tps = sum(p[1] for p in peer) / sum(p[0] for p in peer)
        ratio = ours_tps / peer_tps
        print(f"generate stage: {ours_tps:.1f} tokens/s vs plain model.generate {peer_tps:.1f} tokens/s on the same prompts: {ratio:.2f}x")
    H.save(a, 'bench_ask', ctx, dict(
        n_asks=len(answers), n_answered=len(answered), ingest_s=round(ingest_s, 2), generator_load_s=round(load_s, 2),
        stages={r[0]: dict(n=r[1], median_s=round(r[2], 4), p95_s=round(r[3], 4)) for r in rows},
        prompt_tokens_median=float(np.median(tin)) if tin else None, completion_tokens_median=float(np.median(tout)) if tout else None,
        generate_vs_model_generate=None if ratio is None else round(ratio, 3)))


if __name__ == '__main__':
    main()
