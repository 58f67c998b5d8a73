"""Preferences in QSettings (organisation/application names are set first, in app.__main__).

Project data lives in project folders; only preferences live here: the model location, device
and precision, defaults for new requests, the last folders used, window geometry and state.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from PySide6.QtCore import QByteArray, QCoreApplication, QSettings, QStandardPaths

from engine.api import valid_temperature

from .state.draft import MAX_TAKES, SEED_MODES
from .state.engine_presets import EngineOptions

ORGANISATION = "STARFlow"
APPLICATION = "STARFlow Studio"
MAX_RECENT = 8  # recent projects kept for File > Open Recent


def set_application_names(organisation: str = ORGANISATION, application: str = APPLICATION) -> None:
    """Must run before the first QSettings is made."""
    QCoreApplication.setOrganizationName(organisation)
    QCoreApplication.setApplicationName(application)


class Settings:
    """Typed access to the preferences; every read goes to QSettings (no stale copies)."""

    def __init__(self, qsettings: QSettings | None = None) -> None:
        self.q = qsettings or QSettings()

    def _get(self, key: str, default, kind: type):
        value = self.q.value(key, default)
        try:
            return kind(value) if value is not None else default
        except (TypeError, ValueError):
            return default

    def _set(self, key: str, value) -> None:
        self.q.setValue(key, value)

    # ---- engine ---------------------------------------------------------------------------------
    @property
    def model(self) -> str:
        """Model file (bundle JSON / checkpoint) or hub id; "" = the built-in demo model."""
        return self._get("engine/model", "", str)

    @model.setter
    def model(self, value: str) -> None:
        self._set("engine/model", value or "")

    @property
    def device(self) -> str:
        return self._get("engine/device", "auto", str)

    @device.setter
    def device(self, value: str) -> None:
        self._set("engine/device", value)

    @property
    def precision(self) -> str:
        return self._get("engine/precision", "auto", str)

    @precision.setter
    def precision(self, value: str) -> None:
        self._set("engine/precision", value)

    @property
    def engine_options(self) -> EngineOptions:
        """How STARFlow-V checkpoints load (memory preset, offload, window, aspect ratio, config,
        parts) and their guidance default; each field under engine/options/."""
        values = {}
        for f in fields(EngineOptions):
            default = getattr(EngineOptions, f.name)
            kind = _to_bool if isinstance(default, bool) else type(default)
            values[f.name] = self._get(f"engine/options/{f.name}", default, kind)
        return EngineOptions(**values)

    @engine_options.setter
    def engine_options(self, options: EngineOptions) -> None:
        for name, value in options.to_dict().items():
            self._set(f"engine/options/{name}", value)

    def part(self, key: str) -> str:
        """The local folder the model manager checked for a part ("text-encoder", "vae"); ""."""
        return self._get(f"parts/{key}", "", str)

    # ---- request defaults -----------------------------------------------------------------------
    @property
    def guidance(self) -> float:
        return self._get("defaults/guidance", 2.5, float)

    @guidance.setter
    def guidance(self, value: float) -> None:
        self._set("defaults/guidance", float(value))

    @property
    def temperature(self) -> float | None:
        """The sampling temperature of new requests; None: the model's own default."""
        value = self._get("defaults/temperature", 0.0, float)
        return value if valid_temperature(value) else None

    @temperature.setter
    def temperature(self, value: float | None) -> None:
        self._set("defaults/temperature", float(value or 0.0))

    @property
    def seed(self) -> int:
        return self._get("defaults/seed", 0, int)

    @seed.setter
    def seed(self, value: int) -> None:
        self._set("defaults/seed", int(value))

    @property
    def seed_mode(self) -> str:
        """How the Seed field moves after a job (draft.SEED_MODES)."""
        value = self._get("defaults/seed_mode", "fixed", str)
        return value if value in SEED_MODES else "fixed"

    @seed_mode.setter
    def seed_mode(self, value: str) -> None:
        self._set("defaults/seed_mode", value if value in SEED_MODES else "fixed")

    @property
    def takes(self) -> int:
        """Takes one Generate makes (1 to MAX_TAKES)."""
        return max(1, min(self._get("defaults/takes", 1, int), MAX_TAKES))

    @takes.setter
    def takes(self, value: int) -> None:
        self._set("defaults/takes", max(1, min(int(value), MAX_TAKES)))

    @property
    def frames(self) -> int:
        return self._get("defaults/frames", 17, int)

    @frames.setter
    def frames(self, value: int) -> None:
        self._set("defaults/frames", int(value))

    # ---- files ---------------------------------------------------------------------------------
    def last_dir(self, kind: str) -> str:
        """The folder last used for `kind` (image, video, project, export, model)."""
        return self._get(f"folders/{kind}", str(Path.home()), str)

    def set_last_dir(self, kind: str, path: str | Path) -> None:
        p = Path(path)
        self._set(f"folders/{kind}", str(p if p.is_dir() else p.parent))

    @property
    def recent_projects(self) -> list[Path]:
        """Project folders last opened or saved, the most recent first (at most MAX_RECENT)."""
        value = self.q.value("files/recent_projects", [])
        if isinstance(value, str):  # QSettings gives one string for a one-entry list
            value = [value]
        if not isinstance(value, list):
            return []
        return [Path(v) for v in value if isinstance(v, str) and v][:MAX_RECENT]

    @recent_projects.setter
    def recent_projects(self, folders: list[Path]) -> None:
        self._set("files/recent_projects", [str(f) for f in folders[:MAX_RECENT]])

    def add_recent_project(self, folder: str | Path) -> None:
        folder = Path(folder).absolute()
        self.recent_projects = [folder, *(f for f in self.recent_projects if f != folder)]

    def forget_recent_project(self, folder: str | Path) -> None:
        folder = Path(folder).absolute()
        self.recent_projects = [f for f in self.recent_projects if f != folder]

    @property
    def reopen_last(self) -> bool:
        """Open the most recent project when the editor starts (off: the start screen)."""
        return self._get("files/reopen_last", False, _to_bool)

    @reopen_last.setter
    def reopen_last(self, on: bool) -> None:
        self._set("files/reopen_last", bool(on))

    @property
    def loop(self) -> bool:
        """Playback starts again at the end (the preview's loop toggle)."""
        return self._get("playback/loop", True, _to_bool)

    @loop.setter
    def loop(self, on: bool) -> None:
        self._set("playback/loop", bool(on))

    @property
    def recovery_dir(self) -> Path:
        default = (
            Path(QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation))
            / "recovery"
        )
        return Path(self._get("paths/recovery", str(default), str))

    @recovery_dir.setter
    def recovery_dir(self, value: str | Path) -> None:
        self._set("paths/recovery", str(value))

    @property
    def models_dir(self) -> Path:
        """Where the model manager downloads checkpoints."""
        from engine.starflow_v.loader import DEFAULT_MODELS_DIR

        return Path(self._get("paths/models", str(DEFAULT_MODELS_DIR), str))

    @models_dir.setter
    def models_dir(self, value: str | Path) -> None:
        self._set("paths/models", str(value))

    @property
    def autosave_minutes(self) -> float:
        return self._get("project/autosave_minutes", 3.0, float)

    @autosave_minutes.setter
    def autosave_minutes(self, value: float) -> None:
        self._set("project/autosave_minutes", float(value))

    # ---- window --------------------------------------------------------------------------------
    def window_state(self) -> tuple[QByteArray | None, QByteArray | None]:
        return self.q.value("window/geometry"), self.q.value("window/state")

    def set_window_state(self, geometry: QByteArray, state: QByteArray) -> None:
        self._set("window/geometry", geometry)
        self._set("window/state", state)

    def sync(self) -> None:
        self.q.sync()


def _to_bool(value) -> bool:
    """QSettings' INI files give booleans back as "true" / "false"."""
    return value.lower() == "true" if isinstance(value, str) else bool(value)
