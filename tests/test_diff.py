"""The definition diff: changed paths by step key and parameter name, the generated summary, the text diff."""
from app.engine.diff import diff_definitions


def _doc(**extra):
    doc = {
        "key": "wf", "name": "Invoices", "params": [{"name": "since", "type": "date"}],
        "steps": [
            {"key": "fetch", "type": "http_request", "name": "Fetch", "with": {"url": "https://a.example/x"}},
            {"key": "report", "type": "log", "name": "Report", "with": {"message": "done"}},
        ],
    }
    doc.update(extra)
    return doc


def test_changed_steps_and_an_added_one_are_summarised_by_name():
    old = _doc()
    new = _doc()
    new["steps"][0]["with"]["url"] = "https://b.example/x"
    new["steps"][1]["with"]["message"] = "finished"
    new["steps"].append({"key": "notify", "type": "log", "name": "Notify", "with": {"message": "hi"}})
    diff = diff_definitions(old, new)
    assert diff.summary == "changed 2 steps, added 'Notify'"
    assert ("steps.fetch.with.url", "https://a.example/x", "https://b.example/x") in diff.changes
    assert ("steps.notify", None, "added") in diff.changes
    assert diff.audit_changes()["steps.report.with.message"] == ["done", "finished"]


def test_moving_a_step_is_a_reorder_not_every_step_changing():
    old = _doc()
    new = _doc()
    new["steps"].reverse()
    diff = diff_definitions(old, new)
    assert diff.changes == [("steps.order", ["fetch", "report"], ["report", "fetch"])]
    assert diff.summary == "reordered steps"


def test_fields_parameters_and_removed_steps():
    old = _doc()
    new = _doc(name="Invoices v2", trigger="api")
    new["params"].append({"name": "limit", "type": "integer"})
    new["params"][0]["required"] = True
    del new["steps"][1]
    diff = diff_definitions(old, new)
    assert diff.summary == ("changed name and trigger, changed 1 parameter, added parameter 'limit', "
                            "removed 'Report'")
    assert ("trigger", None, "api") in diff.changes
    assert ("params.since.required", None, True) in diff.changes
    assert ("steps.report", "removed", None) in diff.changes


def test_identical_documents_have_no_changes_and_no_diff_lines():
    diff = diff_definitions(_doc(), _doc())
    assert not diff.changed and diff.summary == "no changes" and diff.lines == []


def test_the_text_diff_marks_added_and_removed_lines():
    new = _doc(description="Nightly")
    diff = diff_definitions(_doc(), new, "v1", "v2")
    added = [line.text for line in diff.lines if line.kind == "add"]
    assert added == ['+  "description": "Nightly",']
    assert diff.lines[0].kind == "hunk"


def test_the_first_version_has_no_old_document():
    diff = diff_definitions(None, _doc())
    assert diff.summary == "created with 2 steps"
    assert all(line.kind in ("add", "hunk") for line in diff.lines)


def test_audit_changes_are_capped_and_long_values_cut():
    old = _doc()
    new = _doc(name="x" * 1000)
    new["steps"] = [{"key": f"s{i}", "type": "noop"} for i in range(80)]
    changes = diff_definitions(old, new).audit_changes(limit=10)
    assert len(changes) == 11 and changes["…"][1].endswith("more changes")
    assert len(changes["name"][1]) == 300
