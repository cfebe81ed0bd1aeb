"""What a new user goes through before the first test: the README's commands (the very ones
.ci/run runs in a fresh virtual environment), the tests' interpreter being the venv's (also as
nobody and inside a namespace), and a clear message when the reference corpus is missing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import sharedkit
from netnskit import PYTHON, can_run, netns, unprivileged  # noqa: F401  (netns: a fixture)

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
#: what a child must import: the product and its dependencies, from the venv
IMPORTS = "import os, sys, pyroute2, rich, scapy, sniffer; print(sys.prefix, os.getuid())"


def _pytest(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """`python -m pytest` on a tiny selection, as a user runs it from the project root."""
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_missing_corpus_is_one_message_naming_the_path_and_the_variable(tmp_path: Path) -> None:
    nowhere = tmp_path / "nowhere"
    env = {**os.environ, sharedkit.ENV: str(nowhere)}
    r = _pytest("tests/test_cli.py", "-k", "table_summary", env=env)
    out = r.stdout + r.stderr
    assert r.returncode == 4, out  # pytest's usage error: nothing was collected or run
    assert "reference corpus is missing" in out and str(nowhere / "corpus") in out, out
    assert f"{sharedkit.ENV}=" in out, out
    assert "Traceback" not in out and "FileNotFoundError" not in out, out
    assert [line for line in out.splitlines() if line.strip()] == \
        [line for line in out.splitlines() if "reference corpus is missing" in line], out


def test_corpus_found_through_the_variable(tmp_path: Path) -> None:
    """Another copy of the shared directory, named by SNIFFER_SHARED, is the one read."""
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "corpus").mkdir(parents=True)
    for entry in sharedkit.CORPUS.iterdir():
        (elsewhere / "corpus" / entry.name).symlink_to(entry)
    code = "import sharedkit; print(sharedkit.CORPUS)"
    env = {**os.environ, sharedkit.ENV: str(elsewhere)}
    shown = subprocess.run([sys.executable, "-c", code], cwd=TESTS, env=env, capture_output=True,
                           text=True, check=True).stdout.strip()
    assert shown == str(elsewhere / "corpus")
    r = _pytest("tests/test_cli.py", "-k", "table_summary", env=env)
    assert r.returncode == 0 and "1 passed" in r.stdout, r.stdout + r.stderr


def test_readme_commands_are_the_ones_ci_runs() -> None:
    """.ci/run reads the set-up commands from README.md: two, each making and entering a venv,
    then install + first run, and the test extra + the suite."""
    r = subprocess.run(["bash", str(ROOT / ".ci" / "run"), "--print-commands"], cwd=ROOT,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    cmds = r.stdout.splitlines()
    readme = (ROOT / "README.md").read_text().splitlines()
    assert len(cmds) == 2 and all(f"    {c}" in readme for c in cmds), cmds
    venv = "python3 -m venv .venv && . .venv/bin/activate && "
    first, tests = (c.removeprefix(venv) for c in cmds)
    assert all(c.startswith(venv) for c in cmds), cmds
    assert first == "pip install . && sniffer read pcaps/demo.pcapng"
    assert tests == "pip install '.[test]' && python3 -m pytest -q"


@pytest.fixture
def root_only() -> None:
    if reason := can_run():
        pytest.skip(reason)


def test_venv_interpreter_in_a_namespace_as_root_and_as_nobody(netns) -> None:
    """`ip netns exec` and the unprivileged wrapper start this very interpreter with its
    packages (pyenv's base interpreter lives under /root, which nobody cannot enter)."""
    assert netns.run(PYTHON, "-c", IMPORTS).stdout.split() == [sys.prefix, "0"]
    assert netns.run(*unprivileged([PYTHON, "-c", IMPORTS])).stdout.split() == [sys.prefix, "65534"]


def test_nobody_runs_a_venv_kept_in_a_private_directory(root_only, tmp_path: Path) -> None:
    """A venv (and so its python and site-packages) below a 0700 directory, as under /root:
    nobody cannot start it directly, but through unprivileged() it runs with its packages."""
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    home.chmod(0o700)
    venv = home / "proj" / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   capture_output=True, timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run([python, "-c", "import site; print(site.getsitepackages()[0])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    # the packages: this interpreter's import path, as an editable install's .pth lists them
    ours = [p for p in sys.path if os.path.isabs(p) and os.path.isdir(p) and p != str(TESTS)]
    Path(site, "ours.pth").write_text("\n".join([str(ROOT), *ours]) + "\n")

    # without help, nobody's python cannot read the venv: a base interpreter without our packages
    direct = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                             python, "-c", IMPORTS], capture_output=True, text=True, cwd="/")
    assert direct.returncode != 0 and "No module named" in direct.stderr, direct

    driver = (f"import subprocess, sys; sys.path.insert(0, {str(TESTS)!r}); import netnskit; "
              f"sys.exit(subprocess.run(netnskit.unprivileged([sys.executable, '-c', {IMPORTS!r}])).returncode)")
    r = subprocess.run([python, "-c", driver], capture_output=True, text=True, timeout=60, cwd="/")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(venv), "65534"]


def _ignored_in_a_child() -> set[str]:
    """The signals a freshly started child process ignores (from /proc, as the kernel has it)."""
    status = subprocess.run(["cat", "/proc/self/status"], capture_output=True, text=True).stdout
    mask = int(next(ln.split()[1] for ln in status.splitlines() if ln.startswith("SigIgn:")), 16)
    return {signal.Signals(n).name for n in range(1, 65) if mask >> (n - 1) & 1
            and n in {s.value for s in signal.Signals}}


def test_children_get_the_default_signals() -> None:
    """The sniffers the tests start and stop with SIGINT or SIGHUP do not ignore them."""
    assert not _ignored_in_a_child() & {"SIGINT", "SIGHUP", "SIGQUIT", "SIGTERM"}


def test_suite_started_in_the_background_still_interrupts_its_children() -> None:
    """`pytest &` in a script or under nohup inherits SIGINT/SIGHUP ignored (as CI may start
    it): the suite gives its children the defaults back."""
    def ignore() -> None:
        for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
            signal.signal(sig, signal.SIG_IGN)
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        f"{Path(__file__).name}::test_children_get_the_default_signals"],
                       cwd=TESTS, capture_output=True, text=True, timeout=120, preexec_fn=ignore)
    assert r.returncode == 0 and "1 passed" in r.stdout, r.stdout + r.stderr
