"""One worker of a launched training: ``python -m ftharness.training.worker JOB.json`` (started by
``accelerate launch``, never by hand; :mod:`ftharness.training.launch` states the contract)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    if sys.platform == "linux":  # SIGTERM this worker when the launcher that started it dies
        from ftharness.models.local_server import die_with_parent

        if os.getppid() == 1:  # already orphaned
            return 1
        die_with_parent(os.getppid())
    job_path = Path(argv[0])
    folder = job_path.parent
    rank = int(os.environ.get("RANK", "0"))
    try:
        return _train(json.loads(job_path.read_text(encoding="utf-8")), folder)
    except BaseException as e:  # every failure reaches the harness as a recorded error and an exit code
        from ftharness.training.launch import write_worker_error

        return write_worker_error(folder, rank, e)


def _train(job: dict, folder: Path) -> int:
    from ftharness.training import launch as L
    from ftharness.training.run import load_artifact, train_candidate
    from ftharness.training.spec import validate_candidate
    from ftharness.training.trainer import CandidateSpec
    from ftharness.typed import from_mapping

    settings = from_mapping(L.LaunchSettings, job["launch"])
    os.environ[L.STRATEGY_ENV] = settings.strategy  # the trainer prepares and checks it (training.sft)
    spec = CandidateSpec(**job["spec"])
    train = L.read_rows(folder / "train.jsonl", job["train"])
    evald = L.read_rows(folder / "eval.jsonl", job["eval"]) if job["eval"] is not None else None

    def artifact(path: str | None):
        return load_artifact(path) if path else None

    train_candidate(spec, train, evald, system_prompt=job["system_prompt"], start_from=artifact(job["start_from"]),
                    progress=job["progress"] and int(os.environ.get("RANK", "0")) == 0,
                    stop_at_step=job["stop_at_step"], resume_from=artifact(job["resume_from"]),
                    typed_hyperparameters=validate_candidate(spec), launch=settings,
                    launch_config=job["accelerate_config"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
