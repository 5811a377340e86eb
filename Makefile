# The two quick-start commands. Each installs what it needs into .venv on first use.
.PHONY: demo test lint bench gpu-check

# Exit 1 from compare is a verdict (no option passes every gate), not a failure of the demo.
demo:
	@scripts/bootstrap.sh
	.venv/bin/ftharness compare || [ $$? -eq 1 ]

test:
	@scripts/bootstrap.sh --test
	.venv/bin/python -m pytest

lint:
	@scripts/bootstrap.sh --test
	.venv/bin/ruff check .

# The figures of README.md, each against its named baseline (benchmarks/*.py say what and how).
bench:
	@scripts/bootstrap.sh
	.venv/bin/python benchmarks/plan_accuracy.py
	.venv/bin/python benchmarks/cli_latency.py
	.venv/bin/python benchmarks/bad_inputs.py
	.venv/bin/python benchmarks/generate.py
	.venv/bin/python benchmarks/train.py
	.venv/bin/python -m pip install -q "rank-bm25>=0.2" "tantivy>=0.22"  # the libraries bm25s is measured against
	.venv/bin/python benchmarks/retrieval.py
	.venv/bin/python benchmarks/served_engine.py
	.venv/bin/python benchmarks/launch.py

# The GPU check (benchmarks/gpu_check.py; README, "GPU check"): a CUDA machine only; it installs what its
# checks need (vLLM and Unsloth in environments of their own under .venv/gpu-check/). Flags: GPU_CHECK_FLAGS.
gpu-check:
	scripts/gpu_check.sh $(GPU_CHECK_FLAGS)
