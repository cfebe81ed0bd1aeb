"""Session summary of the Zeek corpus acceptance test (shown on success too)."""

import zeekcorpus


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    outcomes = config.stash.get(zeekcorpus.OUTCOMES_KEY, None)
    if not outcomes:
        return
    excluded = [p for p in zeekcorpus.load_pairs("all") if p.exclude]
    terminalreporter.write_sep("=", "zeek corpus")
    terminalreporter.write_line(zeekcorpus.summary_line("all", outcomes, excluded))
