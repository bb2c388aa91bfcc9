"""Use cases on workflows: drafts and versions, publishing, restoring, settings, and definition files."""
from app.services.workflows.drafts import archive, clone, create_draft, save_version, slug
from app.services.workflows.publish import publish, set_enabled
from app.services.workflows.restore import active_run_count, restore, restore_refusal
from app.services.workflows.settings import SETTING_FIELDS, check_settings, update_restrictions, update_settings
from app.services.workflows.transfer import LoadResult, export_document, load_definition

__all__ = [
    "SETTING_FIELDS", "LoadResult", "active_run_count", "archive", "check_settings", "clone", "create_draft",
    "export_document", "load_definition", "publish", "restore", "restore_refusal", "save_version", "set_enabled",
    "slug", "update_restrictions", "update_settings",
]
