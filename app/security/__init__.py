"""Who may do what: roles and capabilities, view decorators, loaders that hide what a user may not see,
and the outbound address policy for steps that connect somewhere."""
from app.security.decorators import requires
from app.security.loaders import (
    get_run_or_404, get_workflow_or_404, run_glance_or_404, visible_workflow_ids, visible_workflows,
)
from app.security.policy import ROLE_CAPABILITIES, Capability, Role, can, workflow_visible

__all__ = [
    "ROLE_CAPABILITIES", "Capability", "Role", "can", "get_run_or_404", "get_workflow_or_404", "requires",
    "run_glance_or_404",
    "visible_workflow_ids", "visible_workflows", "workflow_visible",
]
