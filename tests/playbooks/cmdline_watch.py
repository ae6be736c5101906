"""Every process's command line, read from /proc while a converge runs: what `ps` shows any local user."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class Sighting:
    """One process whose command line held a watched value; the value itself is redacted."""

    what: str
    pid: int
    argv: tuple[str, ...]


@dataclass
class CmdlineWatch:
    """Scans /proc/*/cmdline every `interval` seconds in a thread, between __enter__ and __exit__.

    A rabbitmqctl call boots an Erlang VM and lives 0.5 s or more, so it is seen several times.

    `secrets` ({name: value}) must never appear; `markers` (substrings such as "add_user") record that the
    processes of interest ran at all and were seen, so an empty `leaks` means something.

    With `keep=True` every distinct command line is kept too, for secrets only known once the watched run
    has made them (the rehearsal writes its own vault): `leaks_of(secrets)` then searches them afterwards.
    """

    secrets: dict[str, str] = field(default_factory=dict, repr=False)
    markers: tuple[str, ...] = ()
    interval: float = 0.1
    keep: bool = False
    kept: dict[bytes, int] = field(default_factory=dict, init=False, repr=False)
    leaks: list[Sighting] = field(default_factory=list, init=False)
    seen: set[str] = field(default_factory=set, init=False)
    scans: int = field(default=0, init=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)

    def __enter__(self) -> CmdlineWatch:
        self._thread = threading.Thread(target=self._run, name="cmdline-watch", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        needles = {name: value.encode() for name, value in self.secrets.items() if value}
        own = os.getpid()
        while not self._stop.is_set():
            for pid, cmdline in _cmdlines(own):
                if self.keep:
                    self.kept.setdefault(cmdline, pid)
                for name, needle in needles.items():
                    if needle in cmdline:
                        self.leaks.append(Sighting(name, pid, _redacted(cmdline, needles.values())))
                for marker in self.markers:
                    if marker.encode() in cmdline:
                        self.seen.add(marker)
            self.scans += 1
            self._stop.wait(self.interval)


    def leaks_of(self, secrets: dict[str, str]) -> list[Sighting]:
        """The kept command lines that held any of `secrets` (needs `keep=True`)."""
        needles = {name: value.encode() for name, value in secrets.items() if value}
        return [
            Sighting(name, pid, _redacted(cmdline, needles.values()))
            for cmdline, pid in self.kept.items()
            for name, needle in needles.items()
            if needle in cmdline
        ]


def _cmdlines(skip: int) -> list[tuple[int, bytes]]:
    found = []
    for entry in os.scandir(PROC):
        if not entry.name.isdigit() or int(entry.name) == skip:
            continue
        try:
            found.append((int(entry.name), (PROC / entry.name / "cmdline").read_bytes()))
        except OSError:  # the process ended between listing and reading
            continue
    return found


def _redacted(cmdline: bytes, needles: Iterable[bytes]) -> tuple[str, ...]:
    for needle in needles:
        cmdline = cmdline.replace(needle, b"<redacted>")
    return tuple(part.decode(errors="replace") for part in cmdline.split(b"\0") if part)
