"""Cloning: URL validation, the clone cache, mirrors and failures as statuses."""

from __future__ import annotations

import subprocess

import pytest
from fixtures.mining.gitrepo import GitRepo

from leakwatt.common import LeakwattError
from leakwatt.mining.clone import CloneError, checkout, find_mirror, repo_key, resolve_head, validate_url

ACCEPTED = [
    "https://github.com/keras-team/keras-io",
    "https://github.com/keras-team/keras-io.git",
    "https://gitlab.com/group/sub/project",
    "ssh://git@github.com/owner/repo.git",
    "ssh://git@example.org:2222/owner/repo",
    "git@github.com:owner/repo.git",
    "/srv/mirrors/repo",
    "./relative/repo",
    "../sibling/repo",
    "~/src/repo",
]

REJECTED = [
    ("ext::sh -c touch% /tmp/pwned", "transport helper"),
    ("file::/tmp/repo", "transport helper"),
    ("--upload-pack=touch /tmp/pwned", "command-line option"),
    ("--upload-pack=evil", "command-line option"),
    ("-oProxyCommand=evil", "command-line option"),
    ("http://github.com/owner/repo", "use https://"),
    ("git://github.com/owner/repo", "not accepted"),
    ("file:///tmp/repo", "give the local path itself"),
    ("ftp://example.org/repo", "not accepted"),
    ("https://", "no valid host"),
    ("https://github.com/", "names no repository"),
    ("https://-oProxy/owner/repo", "no valid host"),
    ("https://github.com/o/r?x=1", "query"),
    ("git@github.com:-evil", "invalid repository path"),
    ("github.com/owner/repo", "did you mean https://github.com/owner/repo"),
    ("just-a-word", "not accepted"),
    ("", "empty"),
    ("https://github.com/o/r\n--upload-pack=x", "whitespace"),
]


@pytest.mark.parametrize("url", ACCEPTED)
def test_accepted_urls(url):
    assert validate_url(f"  {url} ") == url


@pytest.mark.parametrize("url, why", REJECTED)
def test_rejected_urls(url, why):
    with pytest.raises(LeakwattError, match=why.replace("?", r"\?").replace(".", r"\.")):
        validate_url(url)


def test_repo_key_is_readable_and_distinct():
    a = repo_key("https://github.com/owner/repo.git")
    assert a.startswith("owner+repo-") and a == repo_key("https://github.com/owner/repo/")
    assert a != repo_key("https://gitlab.com/owner/repo")


@pytest.fixture
def history(tmp_path):
    repo = GitRepo(tmp_path / "src" / "proj")
    first = repo.write("a.py", "x = 1\n").commit("one")
    second = repo.write("a.py", "x = 2\n").commit("two")
    return repo, first, second


def test_checkout_pinned_commit_detached(tmp_path, history):
    repo, first, second = history
    work = checkout(str(repo.path), first, tmp_path / "cache")
    assert (work / "a.py").read_text() == "x = 1\n"
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=work, capture_output=True, text=True)
    assert head.stdout.strip() == first
    branch = subprocess.run(["git", "symbolic-ref", "-q", "HEAD"], cwd=work, capture_output=True)
    assert branch.returncode != 0  # detached
    again = checkout(str(repo.path), second, tmp_path / "cache")
    assert again == work and (work / "a.py").read_text() == "x = 2\n"


def test_cache_fetches_commits_made_after_cloning(tmp_path, history):
    repo, first, _ = history
    checkout(str(repo.path), first, tmp_path / "cache")
    third = repo.write("a.py", "x = 3\n").commit("three")
    work = checkout(str(repo.path), third, tmp_path / "cache")
    assert (work / "a.py").read_text() == "x = 3\n"


@pytest.mark.parametrize("layout", ["owner+proj", "owner__proj.git", "proj", "owner/proj.git"])
def test_mirror_dir_used_before_network(tmp_path, history, layout):
    repo, first, _ = history
    mirrors = tmp_path / "mirrors"
    (mirrors / layout).parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "clone", "--quiet", "--mirror", str(repo.path), str(mirrors / layout)],
                   check=True)
    url = "https://git.example.invalid/owner/proj"  # unresolvable: only the mirror can answer
    assert find_mirror(url, mirrors) == mirrors / layout
    work = checkout(url, first, tmp_path / "cache", mirror_dir=mirrors)
    assert (work / "a.py").read_text() == "x = 1\n"


def test_unreachable_local_path(tmp_path):
    with pytest.raises(CloneError) as err:
        checkout(str(tmp_path / "nowhere"), "a" * 40, tmp_path / "cache")
    assert err.value.status == "clone_failed" and "does not exist" in err.value.reason


def test_unreachable_remote_without_network(tmp_path):
    with pytest.raises(CloneError) as err:
        checkout("https://git.example.invalid/owner/proj", "a" * 40, tmp_path / "cache",
                 timeout_s=60)
    assert err.value.status in ("clone_failed", "timeout")
    assert not any((tmp_path / "cache").glob("*"))  # no half-made clone left behind


def test_vanished_commit(tmp_path, history):
    repo, _, _ = history
    with pytest.raises(CloneError) as err:
        checkout(str(repo.path), "0123456789" * 4, tmp_path / "cache")
    assert err.value.status == "commit_missing" and "012345678901" in err.value.reason


def test_force_pushed_history(tmp_path, history):
    repo, _, second = history
    repo.git("reset", "--quiet", "--hard", "HEAD~1")
    repo.git("reflog", "expire", "--expire=now", "--all")
    repo.git("gc", "--quiet", "--prune=now")
    with pytest.raises(CloneError) as err:
        checkout(str(repo.path), second, tmp_path / "cache")
    assert err.value.status == "commit_missing"


def test_empty_repository(tmp_path):
    empty = tmp_path / "empty"
    subprocess.run(["git", "init", "--quiet", str(empty)], check=True)
    with pytest.raises(CloneError) as err:
        checkout(str(empty), "a" * 40, tmp_path / "cache")
    assert err.value.status == "empty"


def test_short_commit_rejected(tmp_path, history):
    repo, first, _ = history
    with pytest.raises(CloneError) as err:
        checkout(str(repo.path), first[:7], tmp_path / "cache")
    assert "full sha" in err.value.reason


def test_resolve_head_local_and_offline(tmp_path, history):
    repo, _, second = history
    assert resolve_head(str(repo.path)) == second
    with pytest.raises(CloneError, match="pass the commit explicitly"):
        resolve_head("https://git.example.invalid/owner/proj", timeout_s=30)
