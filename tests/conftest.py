"""A missing reference corpus stops the run at once with one line (sharedkit.py says where it
is looked for); session summaries shown on success too: the Zeek corpus acceptance test, and
the counts of the robustness tests (fuzzing, property-based tests, the mutation sweep)."""

import signal
from collections.abc import Callable

import pytest

import sharedkit
import zeekcorpus

#: lines the robustness tests report (inputs tried, mutants run), printed at the end
ROBUSTNESS_KEY = pytest.StashKey[list]()


def pytest_configure(config) -> None:
    """Stop before collection, with one line, when the reference corpus is not there."""
    if problem := sharedkit.missing():
        raise pytest.UsageError(problem)
    _default_signals()


def _default_signals() -> None:
    """A suite started in the background (`cmd &` in a script, nohup) inherits SIGINT, SIGQUIT
    or SIGHUP ignored, and so would every sniffer it starts: the tests that stop one with
    those signals would wait in vain. Give this process (and so its children) the defaults."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGHUP, signal.SIGQUIT, signal.SIGTERM):
        if signal.getsignal(sig) == signal.SIG_IGN:
            signal.signal(sig, signal.SIG_DFL)


@pytest.fixture
def robustness_report(request) -> Callable[[str], None]:
    """`robustness_report(line)`: show `line` in the session summary (also under -q)."""
    def report(line: str) -> None:
        request.config.stash.setdefault(ROBUSTNESS_KEY, []).append(line)
    return report


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    lines = config.stash.get(ROBUSTNESS_KEY, None)
    if lines:
        terminalreporter.write_sep("=", "robustness")
        for line in lines:
            terminalreporter.write_line(line)
    outcomes = config.stash.get(zeekcorpus.OUTCOMES_KEY, None)
    if not outcomes:
        return
    excluded = [p for p in zeekcorpus.load_pairs("all") if p.exclude]
    terminalreporter.write_sep("=", "zeek corpus")
    terminalreporter.write_line(zeekcorpus.summary_line("all", outcomes, excluded))
