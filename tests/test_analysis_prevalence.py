"""Prevalence and survival from mining outputs, checked against hand-computed values."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from leakwatt.analysis.prevalence import (
    LIFETIME_COLUMNS,
    PREVALENCE_COLUMNS,
    SURVIVAL_COLUMNS,
    kaplan_meier,
    prevalence,
    write_prevalence,
)
from leakwatt.common import LeakwattError

EVENT_COLUMNS = ["repo", "rule", "path", "event", "commit", "date", "message", "function",
                 "snippet", "removal", "commit_index"]


def _repos() -> pd.DataFrame:
    return pd.DataFrame({
        "url": ["https://x/a", "https://x/b", "https://x/c", "https://x/d"],
        "commit": ["1" * 40, "2" * 40, "3" * 40, "4" * 40],
        "name": ["a", "b", "c", "d"],
        "status": ["ok", "ok", "ok", "clone_failed"],
        "reason": ["", "", "", "unreachable"],
        "files": ["3", "2", "1", ""],
        "kloc": ["2.5", "1.5", "1.0", ""],
    })


def _instances() -> pd.DataFrame:
    return pd.DataFrame({
        "repo": ["https://x/a", "https://x/a", "b", "https://x/a", "https://x/d"],
        "commit": ["1" * 40] * 5, "path": ["t.py"] * 5, "line": ["3", "9", "4", "12", "1"],
        "rule": ["IMR", "IMR", "IMR", "UTR", "IMR"], "variant": ["loop"] * 5,
    })


def _event(repo, rule, path, event, commit, date, function="f", removal="", index=""):
    return {"repo": repo, "rule": rule, "path": path, "event": event, "commit": commit,
            "date": date, "message": "", "function": function, "snippet": f"{function}()",
            "removal": removal if event == "removed" else "", "commit_index": index}


def _events() -> pd.DataFrame:
    a = "https://x/a"
    rows = [
        # four IMR instances in repo a: removed after 10 days (fixed), 20 days (file deleted),
        # 30 days (fixed); one still present, censored at the repo's last event (day 15)
        _event(a, "IMR", "m.py", "introduced", "c0", "2021-01-01T00:00:00Z", "f", index="0"),
        _event(a, "IMR", "m.py", "introduced", "c0", "2021-01-01T00:00:00Z", "g", index="0"),
        _event(a, "IMR", "n.py", "introduced", "c0", "2021-01-01T00:00:00Z", "h", index="0"),
        _event(a, "IMR", "o.py", "introduced", "c0", "2021-01-01T00:00:00Z", "k", index="0"),
        _event(a, "IMR", "m.py", "removed", "c1", "2021-01-11T00:00:00Z", "g", "code_changed", "4"),
        _event(a, "IMR", "o.py", "removed", "c2", "2021-01-21T00:00:00Z", "k", "deleted_file",
               "8"),
        _event(a, "IMR", "n.py", "removed", "c3", "2021-01-31T00:00:00Z", "h", "code_changed",
               "12"),
        # a removal with no matching introduction
        _event(a, "UTR", "z.py", "removed", "c3", "2021-01-31T00:00:00Z", "q", "code_changed",
               "12"),
    ]
    return pd.DataFrame(rows, columns=EVENT_COLUMNS)


def test_prevalence_per_rule():
    tables = prevalence(_repos(), _instances(), _events())
    table = tables["prevalence"].set_index("rule")
    assert list(tables["prevalence"].columns) == PREVALENCE_COLUMNS
    imr = table.loc["IMR"]
    assert imr["instances"] == 3                      # the clone_failed repo's one is not counted
    assert imr["kloc"] == pytest.approx(5.0)
    assert imr["instances_per_kloc"] == pytest.approx(3 / 5.0)
    assert imr["repos_affected"] == 2 and imr["repos_ok"] == 3   # "b" matched by name
    assert imr["share_repos_affected"] == pytest.approx(2 / 3)
    assert "1 instance(s) in repositories not ok" in imr["note"]
    assert table.loc["UTR", "instances"] == 1
    assert table.loc["UTR", "unmatched_removals"] == 1


def test_survival_of_removed_instances():
    tables = prevalence(_repos(), _instances(), _events())
    imr = tables["prevalence"].set_index("rule").loc["IMR"]
    assert (imr["introduced"], imr["removed"], imr["still_present"]) == (4, 3, 1)
    assert (imr["removed_code_changed"], imr["removed_deleted_file"]) == (2, 1)
    assert imr["share_fixed"] == pytest.approx(2 / 3)
    assert imr["share_deleted"] == pytest.approx(1 / 3)
    assert imr["median_survival_days"] == pytest.approx(20.0)     # of 10, 20, 30
    assert imr["median_survival_commits"] == pytest.approx(8.0)   # of 4, 8, 12
    # Kaplan-Meier by hand: censored f at day 30 (the repo's last event);
    # t=10: 4 at risk, 1 event -> 0.75; t=20: 3 at risk -> 0.5; t=30: 2 at risk, 1 event -> 0.25
    assert imr["km_median_days"] == pytest.approx(20.0)
    life = tables["lifetimes"]
    assert list(life.columns) == LIFETIME_COLUMNS
    censored = life[(life["rule"] == "IMR") & ~life["removed"]].iloc[0]
    assert censored["function"] == "f" and censored["days"] == pytest.approx(30.0)
    curve = tables["survival"]
    assert list(curve.columns) == SURVIVAL_COLUMNS
    days = curve[(curve["rule"] == "IMR") & (curve["time_unit"] == "days")]
    assert days["time"].tolist() == [0.0, 10.0, 20.0, 30.0]
    assert days["survival"].tolist() == pytest.approx([1.0, 0.75, 0.5, 0.25])
    assert days["at_risk"].tolist() == [4, 4, 3, 2]


def test_kaplan_meier_matches_hand_values():
    curve = kaplan_meier([1, 2, 2, 5, 7, 9], [1, 1, 0, 1, 0, 1])
    # S(1) = 5/6, S(2) = 5/6 * 4/5, S(5) = 2/3 * 2/3, S(9) = 0
    assert curve["survival"].tolist() == pytest.approx([1, 5 / 6, 2 / 3, 4 / 9, 0])
    assert curve["time"].tolist() == [0, 1, 2, 5, 9]
    assert ((curve["ci_low"] <= curve["survival"]) & (curve["survival"] <= curve["ci_high"])).all()
    flat = kaplan_meier([3, 4], [0, 0])
    assert flat["survival"].tolist() == [1.0, 1.0]


def test_headers_only_inputs():
    tables = prevalence(_repos().iloc[:0], _instances().iloc[:0],
                        pd.DataFrame(columns=EVENT_COLUMNS))
    assert tables["prevalence"].empty and tables["survival"].empty
    assert tables["overview"].iloc[0]["repos_total"] == 0


def test_instances_without_history_events():
    """`mine --no-history` writes instances and a headers-only events.csv: prevalence per rule,
    nothing introduced or removed, no survival curve."""
    tables = prevalence(_repos(), _instances(), pd.DataFrame(columns=EVENT_COLUMNS))
    rows = {r.rule: r for r in tables["prevalence"].itertuples()}
    assert rows["IMR"].instances == 3 and rows["UTR"].instances == 1
    assert rows["IMR"].introduced == 0 and rows["IMR"].removed == 0
    assert rows["IMR"].still_present == 0 and math.isnan(rows["IMR"].km_median_days)
    assert tables["survival"].empty and tables["lifetimes"].empty


def test_bad_event_rows_name_the_line():
    events = _events()
    events.loc[2, "date"] = "yesterday"
    with pytest.raises(LeakwattError, match=r"events\.csv: line 4: date 'yesterday' is not a date"):
        prevalence(_repos(), _instances(), events)
    events = _events()
    events.loc[0, "event"] = "moved"
    with pytest.raises(LeakwattError, match=r"events\.csv: line 2: event 'moved'"):
        prevalence(_repos(), _instances(), events)
    with pytest.raises(LeakwattError, match=r"repos\.csv: line 1: missing column\(s\) kloc"):
        prevalence(_repos().drop(columns=["kloc"]), _instances(), _events())


def test_write_prevalence(tmp_path: Path):
    mined = tmp_path / "mined"
    mined.mkdir()
    _repos().to_csv(mined / "repos.csv", index=False)
    _instances().to_csv(mined / "instances.csv", index=False)
    _events().to_csv(mined / "events.csv", index=False)
    pd.DataFrame({"repo": ["https://x/a"], "commit": ["c9"], "date": ["2021-02-01"],
                  "message": ["fix memory leak"], "matched": ["memory leak"]}).to_csv(
        mined / "leak_commits.csv", index=False)
    tables = write_prevalence(mined, tmp_path / "out")
    written = pd.read_csv(tmp_path / "out" / "prevalence.csv")
    assert written["rule"].tolist() == ["IMR", "UTR"]
    assert (tmp_path / "out" / "survival.csv").is_file()
    assert (tmp_path / "out" / "lifetimes.csv").is_file()
    assert tables["overview"].iloc[0]["leak_commits"] == 1
    (mined / "events.csv").unlink()
    with pytest.raises(LeakwattError, match=r"events\.csv: mining output not found"):
        write_prevalence(mined, tmp_path / "out")


def test_no_removal_means_no_median():
    events = pd.DataFrame([_event("https://x/a", "IMR", "m.py", "introduced", "c0",
                                  "2021-01-01")], columns=EVENT_COLUMNS)
    table = prevalence(_repos(), _instances(), events)["prevalence"].set_index("rule")
    assert math.isnan(table.loc["IMR", "median_survival_days"])
    assert math.isnan(table.loc["IMR", "km_median_days"])


def test_instance_id_matches_across_a_rename_and_seq_counts_commits():
    # the miner's events: an instance id stable across renames and the commit's position `seq`
    rows = [
        {"repo": "https://x/a", "rule": "UTR", "path": "old.py", "event": "introduced",
         "commit": "c0", "date": "2022-01-01", "function": "f", "snippet": "s",
         "removal": "", "seq": "2", "instance": "abc"},
        {"repo": "https://x/a", "rule": "UTR", "path": "other.py", "event": "introduced",
         "commit": "c0", "date": "2022-01-01", "function": "f", "snippet": "s",
         "removal": "", "seq": "2", "instance": "def"},
        {"repo": "https://x/a", "rule": "UTR", "path": "new.py", "event": "removed",
         "commit": "c5", "date": "2022-01-08", "function": "f", "snippet": "s",
         "removal": "code_changed", "seq": "9", "instance": "abc"},
    ]
    tables = prevalence(_repos(), _instances(), pd.DataFrame(rows))
    utr = tables["prevalence"].set_index("rule").loc["UTR"]
    assert (utr["removed"], utr["still_present"], utr["unmatched_removals"]) == (1, 1, 0)
    assert utr["median_survival_days"] == pytest.approx(7.0)
    assert utr["median_survival_commits"] == pytest.approx(7.0)
    life = tables["lifetimes"].set_index("path")
    assert bool(life.loc["old.py", "removed"]) and not bool(life.loc["other.py", "removed"])


def test_still_present_instances_are_censored_at_the_pin_date():
    # an instance whose only event is its introduction: without a pin date it would get 0 days
    a = "https://x/a"
    events = pd.DataFrame([
        _event(a, "UTR", "u.py", "introduced", "c0", "2021-01-01T00:00:00Z", "f", index="0"),
        _event(a, "UTR", "v.py", "introduced", "c0", "2021-01-01T00:00:00Z", "g", index="0"),
        _event(a, "UTR", "v.py", "removed", "c1", "2021-01-11T00:00:00Z", "g", "code_changed",
               "1"),
    ], columns=EVENT_COLUMNS)
    repos = _repos()
    without = prevalence(repos, _instances(), events)["lifetimes"]
    assert without.loc[~without["removed"], "days"].tolist() == [pytest.approx(10.0)]
    repos["pin_date"] = ["2021-01-21T12:00:00+00:00", "", "", ""]
    tables = prevalence(repos, _instances(), events)
    life = tables["lifetimes"]
    censored = life[~life["removed"]].iloc[0]
    assert censored["function"] == "f" and censored["days"] == pytest.approx(20.5)
    assert censored["end_date"].startswith("2021-01-21T12:00:00")


def test_prevalence_by_era_splits_each_rule_by_the_era_of_its_files(tmp_path: Path):
    from leakwatt.analysis.prevalence import prevalence_by_era, read_prevalence

    instances = _instances().assign(era=["tf1", "tf2", "tf1", "", "tf1"])
    table = prevalence_by_era(_repos(), instances)
    cells = {(r.rule, r.era): (r.instances, r.repos_affected) for r in table.itertuples()}
    # repo "b" is matched by name; repo d failed, so its tf1 instance is not counted
    assert cells[("IMR", "tf1")] == (2, 2)
    assert cells[("IMR", "tf2")] == (1, 1)
    assert cells[("IMR", "unknown")] == (0, 0)
    assert cells[("UTR", "unknown")] == (1, 1)
    imr = table[table["rule"] == "IMR"]
    assert imr["share_of_rule"].tolist() == pytest.approx([2 / 3, 1 / 3, 0.0])
    assert imr["share_repos_affected"].tolist() == pytest.approx([2 / 3, 1 / 3, 0.0])

    # an instances.csv from before the era column: every instance is of unknown era
    old = prevalence_by_era(_repos(), _instances())
    assert set(old.loc[old["instances"] > 0, "era"]) == {"unknown"}

    with pytest.raises(LeakwattError, match="era 'tf3'"):
        prevalence_by_era(_repos(), instances.assign(era="tf3"))

    mined = tmp_path / "mined"
    mined.mkdir()
    _repos().to_csv(mined / "repos.csv", index=False)
    instances.to_csv(mined / "instances.csv", index=False)
    _events().to_csv(mined / "events.csv", index=False)
    write_prevalence(mined, tmp_path / "out")
    back = read_prevalence(tmp_path / "out")
    assert back is not None
    assert back["by_era"]["era"].tolist() == table["era"].tolist()

    from leakwatt.analysis.sections import prevalence_section

    text = prevalence_section(back, {})
    assert "TF1 graph code" in text and "2 (67 %); 2 repos (67 %)" in text
    # analyzed without a recall table: the section says so instead of showing corrected counts
    assert "Not corrected for the detectors' recall: no recall table given." in text
    assert "recall-corrected" not in text


def test_open_instances_the_pin_does_not_hold_are_lost_not_survivors():
    # repo a's history: instance "dup" introduced on two branches (the same id twice) and removed
    # once after the merge; "gone" introduced and its removal never seen (its file deleted where
    # the snapshot lacks the blob); "kept" introduced and still at the pin
    a = "https://x/a"
    rows = [
        {**_event(a, "IMR", "m.py", "introduced", "c0", "2021-01-01T00:00:00Z", "f", index="0"),
         "instance": "dup"},
        {**_event(a, "IMR", "m.py", "introduced", "c1", "2021-01-02T00:00:00Z", "f", index="1"),
         "instance": "dup"},
        {**_event(a, "IMR", "m.py", "removed", "c2", "2021-01-11T00:00:00Z", "f", "code_changed",
                  "2"), "instance": "dup"},
        {**_event(a, "IMR", "old.py", "introduced", "c0", "2021-01-01T00:00:00Z", "g",
                  index="0"), "instance": "gone"},
        {**_event(a, "IMR", "k.py", "introduced", "c0", "2021-01-01T00:00:00Z", "h", index="0"),
         "instance": "kept"},
    ]
    events = pd.DataFrame(rows, columns=[*EVENT_COLUMNS, "instance"])
    repos = _repos()
    repos["pin_date"] = ["2021-01-31T00:00:00+00:00", "", "", ""]
    instances = pd.DataFrame({"repo": [a], "commit": ["1" * 40], "path": ["k.py"],
                              "line": ["5"], "rule": ["IMR"], "variant": ["loop"],
                              "function": ["h"]})
    tables = prevalence(repos, instances, events)
    imr = tables["prevalence"].set_index("rule").loc["IMR"]
    assert (imr["introduced"], imr["removed"], imr["still_present"],
            imr["lost_in_history"]) == (4, 1, 1, 2)
    life = tables["lifetimes"]
    assert sorted(life["fate"]) == ["lost", "lost", "present", "removed"]
    assert set(life.loc[life["fate"] == "lost", "function"]) == {"f", "g"}
    assert life.loc[life["fate"] == "present", "path"].tolist() == ["k.py"]
    # Kaplan-Meier over the removed (day 10) and the censored one (day 30) only: 1 of 2 at risk
    # fails at day 10 -> 0.5; the lost ones would have kept it at 0.75 as if they survived
    days = tables["survival"][(tables["survival"]["rule"] == "IMR")
                              & (tables["survival"]["time_unit"] == "days")]
    assert days["at_risk"].iloc[0] == 2
    assert days.loc[days["time"] == 10.0, "survival"].tolist() == pytest.approx([0.5])
    assert imr["km_median_days"] == pytest.approx(10.0)


def test_without_a_function_column_the_pin_is_matched_per_rule():
    # older mining outputs: instances.csv without `function`; two open UTR lifetimes, the pin
    # holds one UTR instance in that repository: the newer open one is kept
    a = "https://x/a"
    events = pd.DataFrame([
        _event(a, "UTR", "u.py", "introduced", "c0", "2021-01-01T00:00:00Z", "f", index="0"),
        _event(a, "UTR", "v.py", "introduced", "c1", "2021-01-05T00:00:00Z", "g", index="1"),
    ], columns=EVENT_COLUMNS)
    life = prevalence(_repos(), _instances(), events)["lifetimes"]
    assert life.set_index("function")["fate"].to_dict() == {"f": "lost", "g": "present"}
