"""A candidate's weights: trained (or taken from the artifact cache) with everything it starts from, on its
training rows as they are made here: a distilled student's teacher labels (``ftharness.compare.distill``), a
retrieving candidate's chunks, replay rows mixed in (``ftharness.compare.replay``)."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from ftharness.compare import distill, replay
from ftharness.compare.backend import LoadedData, Option, generated_row, staged
from ftharness.compare.phases import release_memory
from ftharness.errors import BadInput
from ftharness.io import sha256_file
from ftharness.jsonrecord import from_json
from ftharness.models.engines import DEFAULT_ENGINE, EngineChoice
from ftharness.report.records import Distillation, EndpointUsage, Training


class Artifacts:
    """The training half of :class:`~ftharness.compare.experiment.Experiment` (a mixin: it reads the
    experiment's task, data, backend, phases, retrieval and events, and calls its ``serving``)."""

    def artifact(self, option: Option, by_name: dict[str, Option], *, stop_at_step: int | None = None,
                 resume_from: Any | None = None) -> Any:
        """Train (or take from the cache) a candidate and everything it starts from. ``stop_at_step`` and
        ``resume_from`` train one stage of successive halving (``ftharness.training.run``); a stage that
        stops early is not the candidate's artifact, the stage that trains to the end is."""
        if option.name in self._artifacts and stop_at_step is None and resume_from is None:
            return self._artifacts[option.name]
        parent = None
        if option.entry.start_from:
            parent = self.artifact(by_name[option.entry.start_from], by_name)
        data = self.data
        if option.entry.teacher:  # distilled: it trains on its teacher's labels, not on the training labels
            data = dataclasses.replace(data, fit=self.distill(option, by_name))
        data = self.retrieval.training_data(option, data)
        data = self.replay_data(option, data)
        stage = "" if stop_at_step is None else f" (to step {stop_at_step})"
        self.backend.drop_base()  # not two copies of the weights in memory while training
        release_memory()
        with self.phases("train", option.name + stage):
            art = self.backend.train(option, data, parent, self.progress, **staged(stop_at_step, resume_from))
        release_memory()
        result = art.result.to_dict() if hasattr(art.result, "to_dict") else dict(art.result)
        parent = self._training.get(option.entry.start_from or "")
        earlier = self._training.get(option.name) if resume_from is not None else None
        self._training[option.name] = from_json(
            Training,
            {
                **result,
                "cached": bool(getattr(art, "cached", False)),
                "artifact": str(art.path),
                # a continued stage adds to the stages before it (which hold the parent's time already)
                "total_wall_s": float(result["wall_s"]) + (
                    earlier.total_wall_s if earlier is not None else (parent.total_wall_s if parent else 0.0)),
                "start_from": option.entry.start_from,
                "launch": (getattr(art, "record", None) or {}).get("launch"),
            },
        )
        self.events.append(
            ("reused training of " if getattr(art, "cached", False) else "trained ") + option.name + stage
        )
        self._artifacts[option.name] = art
        return art

    def replay_data(self, option: Option, data: LoadedData) -> LoadedData:
        """The training rows with the candidate's replay rows mixed in (``ftharness.compare.replay``)."""
        spec = getattr(option.entry, "replay", None)
        if spec is None or data.fit is None:
            return data
        n = replay.replay_count(spec.fraction, len(data.fit))
        if n == 0:
            return data
        seed = option.spec["seed"]
        if spec.source == "self":
            prompts = replay.self_prompts()
            answers = replay.self_answers_cached(
                {"model": self.backend.model_identity(), "generation": distill.generation_key(self.task, None)},
                prompts, self._base_answers)
            rows = replay.self_rows(prompts, answers, n, seed)
        else:
            rows = replay.text_rows(spec.source, self.task.replay_paths.get(option.name), n, seed)
        self.events.append(f"{option.name} trains on {len(rows)} replay rows ({spec.source}) beside "
                           f"{len(data.fit)} task rows")
        return dataclasses.replace(data, fit=replay.with_replay(data.fit, rows))

    def _base_answers(self, prompts: list[str]) -> list[str]:
        b = self.backend
        with self.serving(None) as served, self.phases("replay: generate", "base model"):
            self._status(f"the base model answers {len(prompts)} general prompts for self-rehearsal")
            outs = served.generate([[{"role": "user", "content": p}] for p in prompts], b.settings(None))
        return [generated_row(g)["output"] for g in outs]

    # distillation (ftharness.compare.distill) ----------------------------------------------------
    def distill(self, option: Option, by_name: dict[str, Option]) -> Any:
        """A distilled candidate's training rows: its teacher's labels of its inputs, from the label cache
        or generated now, those that fail the task's schema dropped. Records what it did and cost."""
        c = option.entry
        teacher = by_name[c.teacher]
        inputs, excluded = distill.teacher_inputs(self.data, self.task.unlabeled_paths.get(option.name))
        if not inputs.examples:
            raise BadInput("no input left to label: every one also occurs in the eval set or the validation split",
                           file=self.task.file, field=f"candidates.{option.name}.unlabeled")
        constrained = teacher.entry.constrained
        key = distill.labels_key(self.teacher_identity(teacher, by_name), inputs.examples,
                                 distill.generation_key(self.task, constrained))
        labels = distill.read_labels(key, len(inputs.examples))
        cached = labels is not None
        if labels is None:
            with self.phases("label: teacher", option.name):
                # a retrieving teacher reads the chunks each input retrieves, as it does when evaluated
                conversations = self.backend.teacher_messages(teacher, self.retrieval.prompt_data(teacher, self.data),
                                                              self.retrieval.view(teacher, inputs.examples)[0])
                self._status(f"teacher {teacher.name} labelling {len(conversations)} inputs for {option.name}")
                t0 = time.perf_counter()
                outs = self.teacher_generate(teacher, by_name, conversations)
                wall = time.perf_counter() - t0
            release_memory()
            labels = distill.write_labels(key, teacher.name, [generated_row(g) for g in outs], wall)
        self.events.append(f"{'reused' if cached else 'made'} teacher labels of {teacher.name} for {option.name}")
        train, dropped, errors = distill.keep_valid(inputs, labels["rows"], self.task.schema)
        # what the artifact's record and model card name as its training data: the labels, not the inputs' file
        labels_file = distill.labels_path(key)
        train = dataclasses.replace(train, file=str(labels_file), sha256=sha256_file(labels_file))
        rows = labels["rows"]
        self._distillation[option.name] = Distillation(
            teacher=teacher.name,
            teacher_kind=distill.teacher_kind(teacher.entry),
            inputs=str(self.task.unlabeled_paths.get(option.name) or "train"),
            excluded=excluded,
            labelled=len(rows),
            kept=len(train.examples),
            dropped=dropped,
            drop_reasons=errors,
            cached=cached,
            key=key,
            wall_s=float(labels["wall_s"]),
            prompt_tokens=sum(int(r["prompt_tokens"]) for r in rows),
            new_tokens=sum(int(r["new_tokens"]) for r in rows),
            **self._labelling_price(teacher, rows),
        )
        if not train.examples:
            raise BadInput(f"teacher {teacher.name} wrote no label valid under the task's schema for the "
                           f"{len(rows)} inputs; choose a stronger teacher or constrain it (constrained: json-schema)",
                           file=self.task.file, field=f"candidates.{option.name}.teacher")
        return train

    def teacher_identity(self, teacher: Option, by_name: dict[str, Option]) -> dict[str, Any]:
        """What a teacher's labels depend on besides the inputs and generation settings: a candidate's
        artifact key (its base model, data, settings) and prompt; a baseline's spec (an endpoint's server and
        model), the local base model's hash, the instruction and the pool its shots are drawn from (and kept
        apart from)."""
        if teacher.kind == "candidate":
            return {"candidate": self.artifact(teacher, by_name).key, "spec": teacher.spec,
                    "instruction": self.task.instruction,
                    **({"knowledge": self.data.hashes.get("knowledge")} if teacher.entry.retrieval else {})}
        shots = None if teacher.entry.prompt_kind == "zero-shot" else [self.data.hashes["train"],
                                                                       self.data.hashes["eval"]]
        identity = {"baseline": teacher.spec, "instruction": self.task.instruction, "shots": shots}
        if teacher.entry.retrieval is not None:  # its prompts hold chunks of the knowledge base
            identity["knowledge"] = self.data.hashes.get("knowledge")
        if teacher.entry.kind != "endpoint":  # the base model's weights answer it, on whatever engine
            identity["base_model"] = self.backend.model_identity()
        return identity

    def teacher_generate(self, teacher: Option, by_name: dict[str, Option],
                         conversations: list[list[dict[str, str]]]) -> list[Any]:
        """The teacher's answers, generated as it is evaluated, by its engine (a candidate's artifact, a
        baseline's base model or endpoint)."""
        art = self.artifact(teacher, by_name) if teacher.kind == "candidate" else None
        with self.serving(teacher, art) as served:
            return served.generate(conversations, self.backend.settings(teacher.entry.constrained))

    def usage(self, option: Option, rows: list[dict[str, Any]]) -> EndpointUsage | None:
        """What the rows cost at the option's server's stated token prices (an engine with ``usage``: a
        hosted endpoint), else None."""
        from ftharness.plugins import get_plugins

        choice = self.task.engines.get(option.name) or EngineChoice(DEFAULT_ENGINE)
        price = getattr(get_plugins().engine(choice.name), "usage", None)
        return from_json(EndpointUsage, price(choice.settings, rows)) if callable(price) else None

    def _labelling_price(self, teacher: Option, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """``usd`` and ``price_basis`` of a Distillation record: the teacher's tokens at its server's stated
        prices; a teacher without token prices costs its time."""
        usage = self.usage(teacher, rows)
        if usage is None:
            return {"usd": None, "price_basis": "a local teacher has no token price: its cost is its time (wall_s)"}
        return {"usd": usage.usd, "price_basis": f"{usage.model} at ${usage.price_per_million_input:g} per million "
                f"input and ${usage.price_per_million_output:g} per million output tokens (stated in the task)"}
