"""The provider's one setting: the path of the geo-p2p executable (Processing options)."""

from __future__ import annotations

from processing.core.ProcessingConfig import ProcessingConfig, Setting

EXECUTABLE_SETTING = "GEO_P2P_EXECUTABLE"
GROUP = "geo-p2p"


def add_settings() -> None:
    """Show the setting under Settings > Options > Processing > Providers > geo-p2p."""
    ProcessingConfig.addSetting(
        Setting(
            GROUP,
            EXECUTABLE_SETTING,
            "geo-p2p executable (empty: the one on PATH)",
            "",
            valuetype=Setting.FILE,
        )
    )
    ProcessingConfig.readSettings()


def remove_settings() -> None:
    ProcessingConfig.removeSetting(EXECUTABLE_SETTING)


def configured_executable() -> str | None:
    """The executable set in the settings, or None (then it is looked up on PATH)."""
    value = str(ProcessingConfig.getSetting(EXECUTABLE_SETTING) or "").strip()
    return value or None
