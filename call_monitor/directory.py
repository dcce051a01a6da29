"""Lookups in the staff directory: extension -> staff, department -> direct number.

Unknown extensions are normal (a new phone, a trunk): they map to ``None`` and to the
metric label ``"unknown"``, never to an error.
"""

from __future__ import annotations

from dataclasses import dataclass

from call_monitor.config import DirectorySettings

UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Directory:
    settings: DirectorySettings

    def department_of(self, extension: str | None) -> str | None:
        if extension is None:
            return None
        staff = self.settings.staff.get(extension)
        if staff is not None:
            return staff.department
        return self.settings.groups.get(extension)

    def staff_name(self, extension: str | None) -> str | None:
        staff = self.settings.staff.get(extension or "")
        return None if staff is None else staff.name

    def is_staff(self, extension: str | None) -> bool:
        return extension is not None and extension in self.settings.staff

    def direct_number(self, department: str | None) -> str | None:
        entry = self.settings.departments.get(department or "")
        return None if entry is None else entry.direct_number

    @property
    def departments(self) -> list[str]:
        return sorted(self.settings.departments)

    @property
    def extensions(self) -> list[str]:
        return sorted(self.settings.staff)

    def department_label(self, department: str | None) -> str:
        """A bounded metric label: a known department or ``"unknown"``."""
        return department if department in self.settings.departments else UNKNOWN

    def staff_label(self, extension: str | None) -> str:
        """A bounded metric label: a known extension or ``"unknown"``."""
        return extension if extension is not None and self.is_staff(extension) else UNKNOWN
