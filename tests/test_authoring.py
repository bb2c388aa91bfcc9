"""Authoring workflows through the services: drafts, versions, publish, restore, settings, clone, archive, and the
audit rows each writes."""
import threading

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import AuditEvent, User, Workflow, WorkflowVersion
from app.services.errors import Conflict, Invalid, NotFound, PermissionDenied
from app.services.runs import start_run
from app.services.workflows import (
    archive, clone, create_draft, load_definition, publish, restore, save_version, set_enabled,
    update_restrictions, update_settings,
)
from tests.factories import make_run, steps_workflow


def _doc(key="orders", message="one", **extra):
    return steps_workflow(key, [{"key": "fetch", "type": "http_request", "name": "Fetch",
                                 "with": {"url": "https://example.com/orders"}},
                                {"key": "report", "type": "log", "name": "Report", "with": {"message": message}}],
                          **extra)


@pytest.fixture
def admin(session, make_user):
    return session.scalar(sa.select(User).where(User.email == make_user("admin")))


@pytest.fixture
def manager(session, make_user):
    return session.scalar(sa.select(User).where(User.email == make_user("manager")))


def _audit(session, workflow) -> list[AuditEvent]:
    return session.scalars(sa.select(AuditEvent).where(AuditEvent.entity_type == "workflow",
                                                       AuditEvent.entity_id == workflow.id)
                           .order_by(AuditEvent.id)).all()


def test_a_new_workflow_is_a_draft_with_version_1(session, admin):
    workflow = create_draft(session, admin, _doc())
    session.commit()
    assert workflow.is_draft and not workflow.is_published
    assert [v.number for v in workflow.versions] == [1]
    assert workflow.versions[0].author_id == admin.id
    assert workflow.draft_definition == _doc()
    assert not workflow.has_unsaved_changes and workflow.has_unpublished_changes
    assert [(e.action, e.changes["version"]) for e in _audit(session, workflow)] == [("create_workflow", [None, 1])]


def test_create_draft_names_each_bad_field_and_a_taken_key(session, admin):
    bad = _doc()
    bad["steps"][0]["with"]["url"] = ""
    bad["steps"][1]["type"] = "teleport"
    with pytest.raises(Invalid) as caught:
        create_draft(session, admin, bad)
    assert set(caught.value.fields) == {"steps[0].with.url", "steps[1].type"}
    create_draft(session, admin, _doc())
    with pytest.raises(Invalid) as caught:
        create_draft(session, admin, _doc())
    assert "already used" in caught.value.fields["key"]


@pytest.mark.parametrize("role", ["manager", "operator", "viewer", "support"])
def test_only_admins_author(session, make_user, role, admin):
    user = session.scalar(sa.select(User).where(User.email == make_user(role)))
    with pytest.raises(PermissionDenied):
        create_draft(session, user, _doc())
    workflow = create_draft(session, admin, _doc())
    for attempt in (lambda: save_version(session, workflow, user, document=_doc(message="two")),
                    lambda: publish(session, workflow, user), lambda: restore(session, workflow, user, 1),
                    lambda: clone(session, workflow, user, "Copy"), lambda: archive(session, workflow, user),
                    lambda: set_enabled(session, workflow, user, False),
                    lambda: update_restrictions(session, workflow, user, ["admin"])):
        with pytest.raises(PermissionDenied):
            attempt()


def test_every_save_is_a_version_with_a_generated_summary(session, admin):
    workflow = create_draft(session, admin, _doc())
    changed = _doc(message="two")
    changed["steps"].append({"key": "notify", "type": "log", "name": "Notify", "with": {"message": "hi"}})
    version = save_version(session, workflow, admin, document=changed)
    assert version.number == 2 and version.summary == "changed 1 step, added 'Notify'"
    assert workflow.draft_definition == changed
    event = _audit(session, workflow)[-1]
    assert event.action == "save_version"
    assert event.changes["steps.report.with.message"] == ["one", "two"]
    assert event.changes["steps.notify"] == [None, "added"]
    assert save_version(session, workflow, admin, "My words", document=_doc(message="three")).summary == "My words"


def test_saving_the_working_copy_and_nothing_changed(session, admin):
    workflow = create_draft(session, admin, _doc())
    with pytest.raises(Conflict, match="Nothing changed since v1"):
        save_version(session, workflow, admin)
    workflow.draft_definition = _doc(message="edited")
    assert workflow.has_unsaved_changes
    assert save_version(session, workflow, admin).number == 2
    assert not workflow.has_unsaved_changes


def test_max_nodes_and_the_key_of_a_published_workflow(session, admin, manager):
    workflow = create_draft(session, admin, _doc())
    update_settings(session, workflow, admin, {"max_nodes": 2})
    three = _doc()
    three["steps"].append({"key": "extra", "type": "noop"})
    with pytest.raises(Invalid) as caught:
        save_version(session, workflow, admin, document=three)
    assert "at most 2" in caught.value.fields["steps"]
    renamed = save_version(session, workflow, admin, document=_doc(key="orders-v2"))
    assert workflow.key == "orders-v2" and renamed.number == 2  # a draft's key may still change
    publish(session, workflow, admin)
    with pytest.raises(Invalid) as caught:
        save_version(session, workflow, admin, document=_doc(key="orders-v3"))
    assert "cannot change once published" in caught.value.fields["key"]


def test_publish_makes_the_newest_version_live_and_the_draft_stays_editable(session, admin):
    workflow = create_draft(session, admin, _doc())
    assert publish(session, workflow, admin).number == 1
    assert workflow.is_published and workflow.published_version.number == 1
    with pytest.raises(Conflict, match="already live"):
        publish(session, workflow, admin)
    save_version(session, workflow, admin, document=_doc(name="Orders renamed"))
    assert workflow.name == "Orders" and workflow.has_unpublished_changes  # the live name until the next publish
    publish(session, workflow, admin)
    assert workflow.name == "Orders renamed" and workflow.published_version.number == 2
    assert not workflow.has_unpublished_changes
    assert _audit(session, workflow)[-1].changes == {"published_version": [1, 2], "name": ["Orders", "Orders renamed"]}


def test_restore_copies_a_version_as_a_new_one_and_moves_the_live_pointer(session, admin):
    workflow = create_draft(session, admin, _doc())
    save_version(session, workflow, admin, document=_doc(message="two"))
    publish(session, workflow, admin)
    version = restore(session, workflow, admin, 1)
    session.commit()
    assert version.number == 3 and version.summary == "Restored from v1" and version.restored_from == 1
    assert workflow.published_version_id == version.id
    assert workflow.draft_definition == _doc()
    assert restore(session, workflow, admin, 2).number == 4  # numbers never repeat
    with pytest.raises(NotFound):
        restore(session, workflow, admin, 99)


def test_two_restores_at_the_same_moment_both_get_a_version_of_their_own(app, session, admin):
    """Each restore reads the newest number, then adds the next. Both read before either writes (each waits up to a
    second for the other after its read): without a lock taken before the read, both took the same number and one
    failed with an IntegrityError (SQLite has no FOR UPDATE)."""
    workflow = create_draft(session, admin, _doc())
    save_version(session, workflow, admin, document=_doc(message="two"))
    session.commit()
    workflow_id, admin_id = workflow.id, admin.id
    session.remove()
    both_read = threading.Barrier(2, timeout=1)

    def after_read(conn, cursor, statement, *args):
        if "max(workflow_versions.number)" in statement and threading.current_thread().name.startswith("restore"):
            try:
                both_read.wait()
            except threading.BrokenBarrierError:  # the other restore waits for this one's commit: as it should
                pass

    outcome = {}

    def restore_in_a_request(number):
        with app.app_context():
            try:
                version = restore(db.session, db.session.get(Workflow, workflow_id), db.session.get(User, admin_id),
                                  number)
                db.session.commit()
                outcome[number] = version.number
            except Exception as exc:  # noqa: BLE001 (reported by the assertion below)
                outcome[number] = repr(exc)
            finally:
                db.session.remove()

    sa.event.listen(db.engine, "after_cursor_execute", after_read)
    try:
        threads = [threading.Thread(target=restore_in_a_request, args=(n,), name=f"restore-{n}") for n in (1, 2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    finally:
        sa.event.remove(db.engine, "after_cursor_execute", after_read)
    assert set(outcome.values()) == {3, 4}, outcome
    numbers = db.session.scalars(sa.select(WorkflowVersion.number).where(WorkflowVersion.workflow_id == workflow_id)
                                 .order_by(WorkflowVersion.number)).all()
    assert numbers == [1, 2, 3, 4]


@pytest.mark.parametrize("status", ["pending", "running", "waiting", "waiting_for_approval"])
def test_restore_is_refused_while_a_run_is_active(app, session, admin, status):
    workflow = create_draft(session, admin, _doc())
    save_version(session, workflow, admin, document=_doc(message="two"))
    publish(session, workflow, admin)
    session.commit()
    make_run(app, "orders", status)
    make_run(app, "orders", "completed")
    with pytest.raises(Conflict, match="1 run is pending, running or waiting"):
        restore(session, workflow, admin, 1)
    assert [v.number for v in workflow.versions] == [1, 2]


def test_a_draft_cannot_run_and_a_disabled_or_archived_one_neither(session, admin):
    workflow = create_draft(session, admin, _doc())
    with pytest.raises(Conflict, match="draft"):
        start_run(session, workflow, admin, {})
    publish(session, workflow, admin)
    assert set_enabled(session, workflow, admin, False) is True
    assert set_enabled(session, workflow, admin, False) is False
    with pytest.raises(Conflict, match="disabled"):
        start_run(session, workflow, admin, {})
    set_enabled(session, workflow, admin, True)
    archive(session, workflow, admin)
    assert workflow.is_archived and not workflow.enabled and not workflow.can_run
    with pytest.raises(Conflict, match="archived"):
        start_run(session, workflow, admin, {})
    with pytest.raises(Conflict, match="archived"):
        set_enabled(session, workflow, admin, True)
    actions = [e.action for e in _audit(session, workflow)]
    assert actions == ["create_workflow", "publish", "disable", "enable", "archive"]


def test_settings_are_live_at_once_audited_and_checked(session, admin, manager):
    workflow = create_draft(session, admin, _doc())
    with pytest.raises(PermissionDenied):
        update_settings(session, workflow, manager, {"queue": "site-a"})  # a draft: admins only
    publish(session, workflow, admin)
    changes = update_settings(session, workflow, manager, {"queue": "site-a", "max_runtime_seconds": "600",
                                                           "max_actions": None})
    assert changes == {"queue": ["default", "site-a"], "max_runtime_seconds": [None, 600]}
    assert workflow.queue == "site-a" and workflow.max_runtime_seconds == 600
    with pytest.raises(Invalid) as caught:
        update_settings(session, workflow, manager, {"queue": "Not a queue", "max_nodes": 0, "colour": "red"})
    assert set(caught.value.fields) == {"queue", "max_nodes", "colour"}
    assert _audit(session, workflow)[-1].changes == changes
    save_version(session, workflow, admin, document=_doc(message="two"))
    assert workflow.latest_version.settings["queue"] == "site-a"  # each version keeps a copy


def test_restrictions_are_checked_roles(session, admin):
    workflow = create_draft(session, admin, _doc())
    assert update_restrictions(session, workflow, admin, ["operator", "admin"]) == {
        "allowed_roles": [None, ["operator", "admin"]]}
    with pytest.raises(Invalid) as caught:
        update_restrictions(session, workflow, admin, ["emperor"])
    assert "allowed_roles" in caught.value.fields
    assert update_restrictions(session, workflow, admin, []) == {"allowed_roles": [["operator", "admin"], None]}


def test_clone_is_a_draft_copy_under_a_new_name(session, admin):
    workflow = create_draft(session, admin, _doc())
    update_settings(session, workflow, admin, {"queue": "site-a", "max_actions": 50})
    save_version(session, workflow, admin, document=_doc(message="two"))
    publish(session, workflow, admin)
    for bad, problem in (("", "is required"), ("x" * 51, "at most 50")):
        with pytest.raises(Invalid) as caught:
            clone(session, workflow, admin, bad)
        assert problem in caught.value.fields["name"]
    copy = clone(session, workflow, admin, "Orders (EU)")
    again = clone(session, workflow, admin, "Orders EU")
    assert (copy.key, again.key) == ("orders-eu", "orders-eu-2")
    assert clone(session, workflow, admin, "New").key == "new-2"  # /workflows/new is the New workflow page
    assert copy.is_draft and copy.name == "Orders (EU)" and copy.queue == "site-a" and copy.max_actions == 50
    assert [v.number for v in copy.versions] == [1]
    assert copy.versions[0].definition["steps"] == _doc(message="two")["steps"]


def test_a_file_carries_settings_that_apply_but_are_not_versioned(session, admin):
    document = _doc(queue="site-b", allowed_roles=["operator"], settings={"max_nodes": 20, "timeout_seconds": 90})
    workflow = create_draft(session, admin, document)
    assert (workflow.queue, workflow.allowed_roles, workflow.max_nodes, workflow.timeout_seconds) == (
        "site-b", ["operator"], 20, 90)
    assert "queue" not in workflow.versions[0].definition and workflow.versions[0].settings["queue"] == "site-b"
    with pytest.raises(Invalid) as caught:
        create_draft(session, admin, _doc(key="other", settings={"max_nodes": "many", "speed": 1}))
    assert set(caught.value.fields) == {"settings", "settings.max_nodes"}


def test_loading_a_file_as_a_draft_does_not_publish(session, admin):
    result = load_definition(session, _doc(), draft=True)
    assert result.created and not result.published and result.workflow.is_draft
    again = load_definition(session, _doc(), draft=True)
    assert not again.changed
    published = load_definition(session, _doc(message="two"))
    assert published.workflow.is_published and published.version.number == 2
    kept = load_definition(session, _doc(message="three"), draft=True)
    assert kept.version.number == 3 and kept.workflow.published_version.number == 2
    session.commit()
    assert db.session.scalar(sa.select(Workflow.state).where(Workflow.key == "orders")) == "published"


def test_the_audit_log_pages_by_id(session, admin):
    from app.queries.workflows import audit_page

    workflow = create_draft(session, admin, _doc())
    for n in range(4):
        save_version(session, workflow, admin, document=_doc(message=f"m{n}"))
    first = audit_page(session, workflow, limit=2)
    second = audit_page(session, workflow, first.older, limit=2)
    third = audit_page(session, workflow, second.older, limit=2)
    assert [e.changes["version"][1] for e in first.events + second.events + third.events] == [5, 4, 3, 2, 1]
    assert third.older is None


def test_the_demo_has_a_draft_and_a_workflow_with_three_versions(app, session, demo_workflows):
    from app.services.demo import seed

    invoices = session.scalar(sa.select(Workflow).where(Workflow.key == "invoice-sync"))
    assert [v.number for v in invoices.versions] == [1, 2, 3] and invoices.published_version.number == 3
    assert all(v.summary and v.author.email == "admin@example.com" for v in invoices.versions)
    saves = [e for e in _audit(session, invoices) if e.action == "save_version"]
    assert len(saves) == 2 and "steps.post" in saves[0].changes and saves[0].actor == "admin@example.com"
    draft = session.scalar(sa.select(Workflow).where(Workflow.key == "vendor-onboarding"))
    assert draft.is_draft and [v.number for v in draft.versions] == [1]
    assert list(seed(session)) == []  # seeding again changes nothing


def test_a_save_names_every_bad_field_at_once_settings_included(session, admin):
    workflow = create_draft(session, admin, _doc())
    bad = _doc(settings={"max_nodes": "many"})
    bad["steps"][1]["type"] = "teleport"
    with pytest.raises(Invalid) as caught:
        save_version(session, workflow, admin, document=bad)
    assert set(caught.value.fields) == {"settings.max_nodes", "steps[1].type"}
    bigger = _doc(settings={"max_nodes": 3})
    bigger["steps"] += [{"key": "c", "type": "noop"}, {"key": "d", "type": "noop"}]
    with pytest.raises(Invalid) as caught:
        save_version(session, workflow, admin, document=bigger)
    assert "at most 3" in caught.value.fields["steps"]


def test_a_version_saved_with_its_queue_inside_still_counts_as_the_same_file(app, session):
    """Versions saved before settings moved out of the definition hold `queue`; loading the same file again
    after the upgrade changes nothing."""
    from app.models import WorkflowVersion

    document = _doc(queue="default")
    result = load_definition(session, document)
    session.execute(sa.update(WorkflowVersion).where(WorkflowVersion.id == result.version.id)
                    .values(definition=document))  # as an old version stored it
    session.commit()
    session.expire_all()
    assert not load_definition(session, document).changed


def test_restoring_a_draft_moves_only_its_working_copy(session, admin):
    workflow = create_draft(session, admin, _doc(name="First name"))
    save_version(session, workflow, admin, document=_doc(name="Second name"))
    version = restore(session, workflow, admin, 1)
    assert version.number == 3 and workflow.published_version_id is None and workflow.is_draft
    assert workflow.name == "First name" and workflow.draft_definition == _doc(name="First name")
    assert _audit(session, workflow)[-1].changes == {"restored_from": [None, 1], "version": [2, 3],
                                                     "name": ["Second name", "First name"]}
