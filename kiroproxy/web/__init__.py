"""The Flask side: blueprints for the proxy (/v1), the admin API (/api) and the page (/).

Views reach the object graph only through services(); nothing here is built at import.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from flask import current_app

if TYPE_CHECKING:
    from ..services import Services


def services() -> Services:
    """The running app's Services (create_app puts them in the app's extensions)."""
    return current_app.extensions["kiroproxy"]
