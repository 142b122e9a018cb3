"""The corpus file: loading, checking and adding repositories."""

from __future__ import annotations

import pytest
from fixtures.mining.gitrepo import GitRepo

from leakwatt.common import LeakwattError
from leakwatt.mining.corpus import CorpusEntry, add_repository, check_corpus, load_corpus, write_corpus

SHA1 = "a" * 40
SHA2 = "b" * 40
HEADER = "url,commit,name,domain,why,stars\n"


def write(tmp_path, text):
    path = tmp_path / "corpus.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_load_valid_corpus(tmp_path):
    path = write(tmp_path, HEADER
                 + f"https://github.com/o/one,{SHA1},one,vision,\"CNN, k-fold\",120\n"
                 + "# a comment line\n\n"
                 + f"git@github.com:o/two.git,{SHA2.upper()},,,,\n")
    assert load_corpus(path) == [
        CorpusEntry("https://github.com/o/one", SHA1, "one", "vision", "CNN, k-fold", 120),
        CorpusEntry("git@github.com:o/two.git", SHA2, "o/two", "", "", None)]
    assert check_corpus(path) == []


@pytest.mark.parametrize("row, message", [
    (f"http://github.com/o/r,{SHA1},r,,,", "line 2: field url: .*use https://"),
    (f"--upload-pack=x,{SHA1},r,,,", "line 2: field url: .*command-line option"),
    (",{SHA1},r,,,", "line 2: field url: missing"),
    ("https://github.com/o/r,,r,,,", "line 2: field commit: missing"),
    ("https://github.com/o/r,abc1234,r,,,", "line 2: field commit: 'abc1234' is too short"),
    ("https://github.com/o/r,master,r,,,", "line 2: field commit: 'master' is not a sha"),
    (f"https://github.com/o/r,{SHA1},r,,,many", "line 2: field stars: 'many'"),
    (f"https://github.com/o/r,{SHA1},r,,,,extra", "line 2: field row: more cells"),
])
def test_load_reports_file_line_and_field(tmp_path, row, message):
    path = write(tmp_path, HEADER + row + "\n")
    with pytest.raises(LeakwattError, match=f"{path}: {message}"):
        load_corpus(path)


def test_load_missing_column_and_file(tmp_path):
    path = write(tmp_path, "url,name\nhttps://github.com/o/r,r\n")
    with pytest.raises(LeakwattError, match="missing column 'commit'"):
        load_corpus(path)
    with pytest.raises(LeakwattError, match="corpus file not found"):
        load_corpus(tmp_path / "absent.csv")


def test_check_lists_every_problem(tmp_path):
    path = write(tmp_path, "url,commit,name\n"
                 f"https://github.com/o/r,{SHA1},r\n"
                 f"https://github.com/o/r.git/,{SHA2},r2\n"
                 f"https://github.com/o/s,{SHA2},r\n"
                 "ext::sh -c x,,x\n"
                 "https://github.com/o/t,deadbeef,t\n")
    problems = check_corpus(path)
    assert problems == [
        f"{path}: missing column 'domain'",
        f"{path}: missing column 'why'",
        f"{path}: missing column 'stars'",
        f"{path}: line 3: field url: duplicate of line 2",
        f"{path}: line 4: field name: 'r' duplicates line 2",
        f"{path}: line 5: field url: repository URL 'ext::sh -c x' uses a git transport "
        "helper ('<helper>::'); refused",
        f"{path}: line 5: field commit: missing (pin a full 40-character sha)",
        f"{path}: line 6: field commit: 'deadbeef' is too short (pin a full 40-character sha)",
    ]


def test_check_missing_required_column(tmp_path):
    path = write(tmp_path, "url,name\n")
    assert f"{path}: missing required column 'commit'" in check_corpus(path)


def test_add_repository_resolves_head_of_local_repo(tmp_path):
    repo = GitRepo(tmp_path / "proj")
    head = repo.write("a.py", "x = 1\n").commit("one")
    path = tmp_path / "corpus.csv"
    entry = add_repository(path, str(repo.path), domain="demo", why="test")
    assert entry.commit == head and entry.name == "proj"
    assert load_corpus(path) == [entry]
    with pytest.raises(LeakwattError, match="already in the corpus"):
        add_repository(path, str(repo.path) + "/")


def test_add_repository_keeps_existing_rows_and_comments(tmp_path):
    path = write(tmp_path, "# curated by hand\n" + HEADER
                 + f"https://github.com/o/one,{SHA1},one,vision,why,1\n")
    entry = add_repository(path, "https://github.com/o/two", commit=SHA2.upper(), why="x, y")
    text = path.read_text()
    assert text.startswith("# curated by hand\n" + HEADER)
    assert text.endswith(f'https://github.com/o/two,{SHA2},o/two,,"x, y",\n')
    assert [e.name for e in load_corpus(path)] == ["one", "o/two"] and entry.commit == SHA2


def test_add_repository_offline_without_commit(tmp_path):
    with pytest.raises(LeakwattError, match="cannot pin .*pass the commit explicitly"):
        add_repository(tmp_path / "corpus.csv", "https://git.example.invalid/o/r")
    assert not (tmp_path / "corpus.csv").exists()


def test_add_repository_rejects_bad_input(tmp_path):
    with pytest.raises(LeakwattError, match="transport helper"):
        add_repository(tmp_path / "c.csv", "ext::sh -c x", commit=SHA1)
    with pytest.raises(LeakwattError, match="full 40-character sha"):
        add_repository(tmp_path / "c.csv", "https://github.com/o/r", commit="abc123")


def test_write_corpus_round_trip(tmp_path):
    entries = [CorpusEntry("https://github.com/o/r", SHA1, "o/r", "nlp", 'says "hi", twice', 3)]
    write_corpus(tmp_path / "c.csv", entries)
    assert load_corpus(tmp_path / "c.csv") == entries
