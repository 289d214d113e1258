"""The fashionlens HTTP service (FastAPI): ``create_app(settings)``; run it with ``fashionlens serve``.

The library never imports this package; it imports the library.
"""

from fashionlens.service.app import create_app, create_app_from_env
from fashionlens.service.settings import ServiceSettings, SettingsError

__all__ = ["ServiceSettings", "SettingsError", "create_app", "create_app_from_env"]
