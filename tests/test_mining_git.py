"""The git gateway (mining/git.py): the only place in mining/ that starts git, and what it does."""

from __future__ import annotations

import ast
import datetime as dt
import os
import time
from pathlib import Path

import pytest
from fixtures.mining.gitrepo import GitRepo

from leakwatt.mining import git
from leakwatt.mining.git import (
    BlobReader,
    GitTimeout,
    changed_files,
    list_commits,
    list_tree,
    missing_objects,
    run_git,
)

MINING = Path(__file__).resolve().parent.parent / "mining"
GATEWAY = MINING / "git.py"

# Modules that start processes, and the process-starting functions of os.
_PROCESS_MODULES = {"subprocess", "pty", "multiprocessing.popen_fork", "pydriller", "git"}
_OS_CALLS = {"system", "popen", "posix_spawn", "posix_spawnp", "fork", "forkpty", "execv",
             "execve", "execvp", "execvpe", "execl", "execle", "execlp", "execlpe", "spawnv",
             "spawnve", "spawnvp", "spawnvpe", "spawnl", "spawnle", "spawnlp", "spawnlpe"}


def process_starts(source: str) -> list[str]:
    """Where ``source`` could start git by itself: imports of process modules (or of
    GitPython/pydriller), process-starting ``os`` calls, asyncio subprocesses, and list or
    tuple literals that begin with the word ``git`` (a command line)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            if name.split(".")[0] in _PROCESS_MODULES or name in _PROCESS_MODULES \
                    or name in {f"os.{c}" for c in _OS_CALLS}:
                found.append(f"line {node.lineno}: import {name}")
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id == "os" and node.attr in _OS_CALLS:
                found.append(f"line {node.lineno}: os.{node.attr}")
            if node.attr.startswith("create_subprocess"):
                found.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
        if isinstance(node, (ast.List, ast.Tuple)) and node.elts:
            first = node.elts[0]
            if isinstance(first, ast.Constant) and first.value == "git":
                found.append(f"line {node.lineno}: a 'git' command line")
    return found


@pytest.mark.parametrize("source", [
    "import subprocess\nsubprocess.run(['ls'])",
    "from subprocess import run",
    "import os\nos.system('git status')",
    "import os\nos.posix_spawnp('git', ['git'], {})",
    "import asyncio\nasyncio.create_subprocess_exec('git', 'log')",
    "from pydriller import Repository",
    "import git\ngit.Repo('.')",
    "cmd = ('git', 'log')",
])
def test_checker_finds_process_starts(source):
    assert process_starts(source)


def test_checker_leaves_ordinary_code_alone():
    source = ("import os\nfrom leakwatt.mining.git import run_git\n"
              "run_git(['log'], cwd=os.getcwd())\nwords = ['github', 'git']\n")
    assert process_starts(source) == []


#: Modules allowed ``os.fork`` and nothing else that starts a process: the scan sandbox forks
#: Python workers that parse files and exec nothing (mining/sandbox.py).
FORK_ONLY = {MINING / "sandbox.py"}


def test_only_the_gateway_starts_git():
    offenders = {}
    for path in sorted(MINING.rglob("*.py")):
        if path == GATEWAY:
            continue
        found = process_starts(path.read_text(encoding="utf-8"))
        if path in FORK_ONLY:
            found = [f for f in found if not f.endswith(": os.fork")]
        if found:
            offenders[str(path.relative_to(MINING.parent))] = found
    assert offenders == {}, "git must be run through mining/git.py"
    assert process_starts(GATEWAY.read_text(encoding="utf-8"))  # the checker sees the gateway


# ---------------------------------------------------------------------------------------------


def test_ext_transport_refused_even_past_url_validation(tmp_path):
    marker = tmp_path / "ran"
    res = run_git(["ls-remote", "--", f"ext::sh -c touch% {marker}"], cwd=tmp_path, timeout_s=60)
    assert res.returncode != 0
    assert not marker.exists()


def test_hooks_never_run(tmp_path):
    repo = GitRepo(tmp_path / "r")
    hook = repo.path / ".git" / "hooks" / "post-checkout"
    marker = tmp_path / "hook-ran"
    hook.write_text(f"#!/bin/sh\ntouch {marker}\n")
    hook.chmod(0o755)
    repo.write("a.py", "x = 1\n")
    first = repo.commit("one")
    repo.write("a.py", "x = 2\n")
    repo.commit("two")
    assert run_git(["checkout", "--quiet", "--detach", first], cwd=repo.path).returncode == 0
    assert not marker.exists()


def test_callers_git_dir_is_ignored_and_prompts_off(tmp_path, monkeypatch):
    repo = GitRepo(tmp_path / "r")
    repo.write("a.py", "x = 1\n")
    head = repo.commit("one")
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "elsewhere"))
    res = run_git(["rev-parse", "HEAD"], cwd=repo.path)
    assert res.stdout.decode().strip() == head
    assert git.git_env()["GIT_TERMINAL_PROMPT"] == "0"


def test_timeout_kills_the_process_group(tmp_path):
    script = tmp_path / "slow.sh"
    pidfile = tmp_path / "child.pid"
    script.write_text(f"#!/bin/sh\nsleep 30 &\necho $! > {pidfile}\nwait\n")
    script.chmod(0o755)
    env = git.git_env({"PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"})
    with pytest.raises(GitTimeout):
        run_git(["-c", f"alias.slow=!{script}", "slow"], cwd=tmp_path, timeout_s=1, env=env)
    child = int(pidfile.read_text())
    for _ in range(50):  # the killed child is reaped by init shortly after
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("git's child outlived the timeout")


# ---------------------------------------------------------------------------------------------


def branchy(tmp_path: Path) -> tuple[GitRepo, list[str]]:
    """main: a -> b -> merge(c on side); messages with trailing spaces and a non-UTC date."""
    repo = GitRepo(tmp_path / "branchy")
    repo.write("a.py", "x = 1\n").write("data.bin", b"\0\1")
    first = repo.commit("first  \n\nbody line\n")
    repo.git("checkout", "--quiet", "-b", "side")
    repo.write("b.py", "y = 1\n")
    side = repo.commit("side work")
    repo.git("checkout", "--quiet", "main")
    repo.write("a.py", "x = 2\n")
    main = repo.commit("main work")
    repo.git("merge", "--quiet", "--no-ff", "-m", "merge side", "side")
    merge = repo.git("rev-parse", "HEAD")
    return repo, [first, side, main, merge]


def test_list_commits_topological_oldest_first(tmp_path):
    repo, (first, side, main, merge) = branchy(tmp_path)
    commits = list_commits(repo.path, merge)
    assert [c.sha for c in commits][0] == first and commits[-1].sha == merge
    assert {c.sha for c in commits} == {first, side, main, merge}
    assert commits[-1].parents == (main, side)
    assert commits[0].parents == ()
    assert commits[0].message == "first\n\nbody line"
    assert commits[0].date == "2024-01-01T08:00:00+00:00"
    window = list_commits(repo.path, merge, max_commits=2)
    newest = run_git(["rev-list", "--topo-order", "--max-count=2", merge], cwd=repo.path)
    assert [c.sha for c in window] == newest.stdout.decode().split()[::-1]


def test_commit_date_keeps_the_committers_offset():
    assert git._commit_date("1704096000 2024-01-01 13:30:00 +0530") == \
        "2024-01-01T13:30:00+05:30"
    assert git._commit_date("1704096000 2024-01-01 04:00:00 -0400") == \
        dt.datetime(2024, 1, 1, 4, tzinfo=dt.timezone(-dt.timedelta(hours=4))).isoformat()


def test_changed_files_tree_and_blobs(tmp_path):
    repo = GitRepo(tmp_path / "r")
    repo.write("a.py", "x = 1\n").write("notes.txt", "n\n")
    first = repo.commit("one")
    repo.move("a.py", "pkg/A.PY").write("notes.txt", "m\n")
    second = repo.commit("two")
    changes = changed_files(repo.path, [(first, None), (second, first)],
                            [":(icase)*.py"])
    assert [(c.status, c.old_path, c.new_path) for c in changes[first]] == [("A", None, "a.py")]
    (renamed,) = changes[second]
    assert (renamed.status[0], renamed.old_path, renamed.new_path) == ("R", "a.py", "pkg/A.PY")
    tree = {e.path: e for e in list_tree(repo.path, second)}
    assert set(tree) == {b"pkg/A.PY", b"notes.txt"}
    assert tree[b"notes.txt"].size == 2 and tree[b"notes.txt"].kind == "blob"
    absent = "1" * 40
    assert missing_objects(repo.path, [tree[b"notes.txt"].sha, absent]) == {absent}
    with BlobReader(repo.path) as reader:
        assert reader.read(renamed.new_blob) == b"x = 1\n"
        assert reader.read(absent) is None


def test_failing_plumbing_raises_with_gits_message(tmp_path):
    repo = GitRepo(tmp_path / "r")
    with pytest.raises(RuntimeError, match="git ls-tree failed"):
        list_tree(repo.path, "0" * 40)
