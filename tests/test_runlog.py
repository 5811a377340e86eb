"""Third-party noise goes to the run's log file, not the terminal, and everything is put back after."""

from __future__ import annotations

import logging
import warnings

from ftharness.runlog import third_party_to_log


def test_warnings_and_library_logs_go_to_the_file(tmp_path, capsys):
    from transformers.utils import logging as tlog

    before = tlog.get_verbosity()
    tlog.set_verbosity_warning()  # the tests run at error level (conftest); users get warnings
    root_handlers = list(logging.getLogger().handlers)
    log = tmp_path / "run" / "run.log"
    with third_party_to_log(log):
        warnings.warn("`is_gradient_checkpointing` is deprecated", FutureWarning, stacklevel=1)
        logging.getLogger("bitsandbytes.backends.cpu").warning("Failed to load CPU gemm_4bit_forward")
        logging.getLogger("transformers.modeling_utils").warning("advisory from transformers")
    tlog.set_verbosity(before)
    captured = capsys.readouterr()
    text = log.read_text()
    assert "is_gradient_checkpointing" in text and "FutureWarning" in text
    assert "Failed to load CPU gemm_4bit_forward" in text and "bitsandbytes" in text
    assert "advisory from transformers" in text
    assert "gemm_4bit" not in captured.err and "is_gradient" not in captured.err
    assert logging.getLogger().handlers == root_handlers  # put back
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        warnings.warn("after", UserWarning, stacklevel=1)
    assert seen and "after" not in log.read_text()
