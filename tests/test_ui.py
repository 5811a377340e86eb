"""ftharness.ui: the silent default, plain lines for logs, the rich display, and the CLI's choice among them."""

from __future__ import annotations

import argparse
import io
import types
from pathlib import Path

import pytest

from ftharness import ui
from ftharness.cli.render import RichUI, terminal_ui

MARKUP_PATH = "runs/[bold]draft[/bold]/model \\[x]"


def test_nothing_installed_prints_nothing(capsys):
    assert isinstance(ui.current(), ui.Silent)
    ui.status("loading")
    ui.warn("plan unavailable")
    with ui.progress("generating", 3) as step:
        step.advance(3)
        step.note("loss 1.0")
    assert capsys.readouterr() == ("", "")


def test_plain_lines_go_to_stderr_with_markup_as_written(capsys):
    plain = ui.Plain()
    plain.status(f"converting into {MARKUP_PATH}")
    plain.warn(f"cannot read {MARKUP_PATH}")
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [f"converting into {MARKUP_PATH}", f"warning: cannot read {MARKUP_PATH}"]


def test_plain_step_prints_start_quarters_and_end():
    buf = io.StringIO()
    with ui.Plain(buf).progress("training lora", 8) as step:
        for i in range(8):
            step.note(f"loss {1 - i / 10:.1f}")
            step.advance()
    lines = buf.getvalue().splitlines()
    assert lines[0] == "training lora: 0/8"
    assert lines[1:4] == ["training lora: 2/8 loss 0.9", "training lora: 4/8 loss 0.7", "training lora: 6/8 loss 0.5"]
    assert lines[4].startswith("training lora: 8/8 loss 0.3 in ") and lines[4].endswith(" s")
    assert len(lines) == 5


def test_plain_step_resumed_and_of_unknown_length():
    buf = io.StringIO()
    plain = ui.Plain(buf)
    with plain.progress("generating b", 24, completed=16) as step:
        step.advance(8)
    with plain.progress("converting m.gguf", None):
        pass
    lines = buf.getvalue().splitlines()
    assert lines[0] == "generating b: 16/24" and lines[1].startswith("generating b: 24/24 in ")
    assert lines[2] == "converting m.gguf: started" and lines[3].startswith("converting m.gguf: done in ")


def test_plain_step_ended_by_an_error_prints_no_end_line():
    buf = io.StringIO()
    with pytest.raises(RuntimeError), ui.Plain(buf).progress("training", 4) as step:
        step.advance()
        raise RuntimeError("out of memory")
    assert buf.getvalue().splitlines() == ["training: 0/4", "training: 1/4"]  # no "4/4 in ..." line


def test_installed_routes_the_module_functions_and_restores(capsys):
    closed = []

    class Closing(ui.Plain):
        def close(self) -> None:
            closed.append(True)

    with ui.installed(Closing()):
        ui.status("scoring")
        ui.warn("merged latency unavailable")
        with ui.progress("hidden", 2, show=False) as step:  # a caller whose caller counts already
            step.advance(2)
    assert isinstance(ui.current(), ui.Silent) and closed == [True]
    assert capsys.readouterr().err.splitlines() == ["scoring", "warning: merged latency unavailable"]


def _rich(width: int = 200) -> tuple[RichUI, io.StringIO]:
    from rich.console import Console

    buf = io.StringIO()
    return RichUI(Console(file=buf, width=width, force_terminal=False, highlight=False)), buf


def test_rich_prints_paths_and_labels_literally():
    rich_ui, buf = _rich()
    rich_ui.status(f"converting into {MARKUP_PATH}")
    rich_ui.warn(f"cannot read {MARKUP_PATH}")
    with rich_ui.progress(f"generating {MARKUP_PATH}", 4) as outer:
        with rich_ui.progress("scoring [red]", 2) as inner:  # nested: one live display holds both
            inner.advance(2)
            inner.note("loss [0.5]")
        outer.advance(4)
    text = buf.getvalue()
    assert f"converting into {MARKUP_PATH}" in text
    assert f"warning: cannot read {MARKUP_PATH}" in text
    assert f"generating {MARKUP_PATH}" in text and "4/4" in text
    assert "scoring [red]" in text and "loss [0.5]" in text and "2/2" in text
    assert rich_ui._bars is None  # the last step closed the display


def test_rich_close_ends_a_step_left_open():
    rich_ui, _ = _rich()
    step = rich_ui.progress("training", 10)
    step.__enter__()
    rich_ui.close()
    assert rich_ui._bars is None


def test_cli_chooses_silent_plain_or_rich(monkeypatch):
    def args(**kw):
        return argparse.Namespace(**{"json": False, "no_progress": False, **kw})

    assert isinstance(terminal_ui(args(json=True)), ui.Silent)
    assert isinstance(terminal_ui(args(no_progress=True)), ui.Silent)
    assert isinstance(terminal_ui(argparse.Namespace()), ui.Plain)  # a command without those flags
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich's switch for "treat stderr as a terminal"
    assert isinstance(terminal_ui(args()), RichUI)


def test_cli_prints_paths_literally_and_puts_the_silent_ui_back(tmp_path, capsys, monkeypatch):
    from ftharness.cli import main

    monkeypatch.chdir(tmp_path)
    folder = Path("[bold]runs")  # read as markup, this would print "runs" in bold
    folder.mkdir()
    (folder / "p.jsonl").write_text('{"output": "{}"}\n')
    (folder / "train.jsonl").write_text('{"prompt": "hello", "completion": "world"}\n')
    assert main(["eval", "--suite", "format", "--predictions", str(folder / "p.jsonl"), "--out", str(folder / "r")]) == 0
    assert isinstance(ui.current(), ui.Silent)
    assert "results: [bold]runs/r/results.json" in capsys.readouterr().out
    assert main(["data", "inspect", str(folder / "train.jsonl")]) == 0
    assert "data: [bold]runs/train.jsonl" in capsys.readouterr().out


def test_training_steps_are_counted_through_the_ui():
    from ftharness.training.callbacks import progress_callback

    buf = io.StringIO()
    callback = progress_callback("training lora")
    state = types.SimpleNamespace(max_steps=4, global_step=0)
    with ui.installed(ui.Plain(buf)):
        callback.on_train_begin(None, state, None)
        for step in range(1, 5):
            state.global_step = step
            callback.on_log(None, state, None, logs={"loss": 2.0 / step})
            callback.on_step_end(None, state, None)
        callback.on_train_end(None, state, None)
    lines = buf.getvalue().splitlines()
    assert lines[0] == "training lora: 0/4"
    assert lines[1] == "training lora: 1/4 loss 2.0000"
    assert lines[-1].startswith("training lora: 4/4 loss 0.5000 in ")
