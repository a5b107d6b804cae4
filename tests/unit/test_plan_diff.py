"""Plan diffs (pure): what counts as a change, and how it reads."""

import pytest

from jbcalling.cli import plan_diff

pytestmark = pytest.mark.unit


def test_an_edited_marker_without_fields_is_no_change() -> None:
    plan = {"Diff": {"Type": "Edited", "ID": "s", "TaskGroups": [
        {"Type": "Edited", "Name": "s", "Fields": None, "Objects": None,
         "Tasks": [{"Type": "None", "Name": "s"}], "Updates": {"in-place update": 1}}]}}
    assert not plan_diff.changed(plan)
    assert plan_diff.lines(plan) == []


def test_a_field_change_is_shown_with_old_and_new() -> None:
    plan = {"Diff": {"Type": "Edited", "ID": "s", "TaskGroups": [
        {"Type": "Edited", "Name": "g", "Updates": {"create/destroy update": 1},
         "Fields": [{"Type": "Edited", "Name": "Count", "Old": "1", "New": "2"}],
         "Tasks": [{"Type": "Edited", "Name": "t", "Objects": [
             {"Type": "Edited", "Name": "Env", "Fields": [
                 {"Type": "Added", "Name": "X", "Old": "", "New": "1"}]}]}]}]}}
    assert plan_diff.changed(plan)
    text = "\n".join(plan_diff.lines(plan))
    assert "~ Count: '1' => '2'" in text
    assert "+ Env.X: '1'" in text
    assert "group g (1 create/destroy update)" in text


def test_a_new_job_is_a_change() -> None:
    assert plan_diff.changed({"Diff": {"Type": "Added", "ID": "s"}})
