"""Bad-input rows for train.py (see tests/badinput.py)."""

from __future__ import annotations

from tests.badinput import EXIT_USAGE, Row

ROWS = [
    Row(id="train-unknown-config-key", covers="an unknown override key is named, with the valid ones", cli="train",
        argv=lambda ws: ["--config", "quickstart.yaml", "optim.lrr=0.1", "--print-config"],
        code=EXIT_USAGE, message="optim.lrr"),
    Row(id="train-missing-config-file", covers="a config path that does not exist is named", cli="train",
        argv=lambda ws: ["--config", str(ws.path("nope.yaml"))], code=EXIT_USAGE, message="nope.yaml"),
]
