"""A notebook-driven accelerator for offline, measured and governed retrieval-augmented assistants

Modules:

- `genai_accel.assessment.evaluation`: Evaluation sets, offline answer and groundedness metrics, repeated and resumable runs of candidate configurations, side-by-side comparison with a per-row diagnosis, and release gates.
- `genai_accel.assessment.readiness`: Is a corpus ready for a retrieval-augmented assistant? Ten measured dimensions, each scored 0-100 with its rule in plain words, an overall score, and a ranked list of what to fix first.
- `genai_accel.assessment.safety`: Offline, deterministic probes of the assistant's safety and responsibility: prompt injection (direct and through poisoned documents), system-prompt and secret leakage, PII leakage across access groups, counterfactual bias and toxic language. Each family yields a pass rate and its failing examples.
- `genai_accel.data.cleaning`: Normalise document text, remove boilerplate lines that recur across documents, and find exact and near duplicates, before anything is chunked or embedded.
- `genai_accel.data.index`: The workspace's state in SQLite, a dense faiss index and a BM25 index built from it, and hybrid search that applies collection, metadata and access-group filters inside the search.
- `genai_accel.data.ingest`: From a folder of files to a searchable workspace: load, clean, redact, deduplicate, chunk, embed, index, with a manifest that accounts for every input file.
- `genai_accel.data.loaders`: Turn a folder of files (text, Markdown, HTML, PDF, DOCX, CSV, JSONL, a BEIR corpus) into `Document`s with stable ids, and say why for every file that yields none.
- `genai_accel.data.store`: The workspace's SQLite store: its schema, its version and forward migrations, the writer lock, and every SQL statement the accelerator runs on it.
- `genai_accel.deployment.mcp`: `search` and `answer` as Model Context Protocol tools for agents and IDEs, over stdio (`genai-accel mcp`) or streamable HTTP (`/mcp/` of `genai-accel serve`), with the caller's API key deciding scopes and groups.
- `genai_accel.deployment.server`: An OpenAI-compatible, key-protected HTTP API over a workspace: chat completions, embeddings, search, answers, feedback, ingest jobs, health, readiness and Prometheus metrics."""

__version__ = "0.1.0"
