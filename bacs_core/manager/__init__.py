"""The BACS manager: poll cycle, equalization, alarms and the thermal-runaway trip."""

from .config import ConfigError, ManagerConfig, validate_config
from .safety import SafetyRefusedError
from .service import Manager
from .storage import FileStorage, MemoryStorage, StateUnreadableError, Storage

__all__ = [
    "ConfigError",
    "FileStorage",
    "Manager",
    "ManagerConfig",
    "MemoryStorage",
    "SafetyRefusedError",
    "StateUnreadableError",
    "Storage",
    "validate_config",
]
