"""`evodevo view RUN_DIR`: the pygame window. It owns the window and the events only;
every frame is `render.draw_frame(snapshot, ui)`.

    evodevo view runs/demo                       live: follows RUN_DIR/snapshot.npz
    evodevo view runs/demo --checkpoint latest   a checkpoint's state (or a step number)
    evodevo view runs/demo --screenshot out.png  one frame to a PNG, no window
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import replace
from pathlib import Path

from evodevo.viewer.snapshot import MAX_SLOTS, SNAPSHOT, SnapshotError
from evodevo.viewer.source import LiveSource, ViewError, check_run_dir, load_checkpoint, snapshot_enabled
from evodevo.viewer.ui import UI, on_key, on_snapshot

SCREENSHOT_WAIT_S = float(os.environ.get("EVODEVO_VIEW_WAIT_S", 60.0))  # --screenshot waits this long for a snapshot
POLL_S = 0.25  # how often the window looks for a new snapshot
MESSAGE_S = 4.0  # how long a status message stays
FPS = 30


def _quiet_pygame():
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")


def _error(msg: str) -> int:
    print(f"evodevo: error: {msg}", file=sys.stderr)
    return 2


def main(args) -> int:
    try:
        run_dir = check_run_dir(args.run_dir)
        if args.screenshot:
            return screenshot(run_dir, args.checkpoint, args.screenshot)
        return Viewer(run_dir, args.checkpoint).run()
    except (ViewError, SnapshotError) as e:
        return _error(str(e))
    except KeyboardInterrupt:
        return 130


def _no_snapshot_message(run_dir: Path) -> str:
    if snapshot_enabled(run_dir) is False:
        return (f"run '{run_dir}' writes no live snapshot (run.snapshot: false in its config.yaml); "
                f"use --checkpoint latest")
    return f"no live snapshot in '{run_dir}' yet (the run writes one after its first chunk)"


def screenshot(run_dir: Path, checkpoint: str | None, out: str, wait_s: float | None = None) -> int:
    """Render one frame of the live snapshot (or a checkpoint) to a PNG, without a window."""
    _quiet_pygame()
    if "DISPLAY" not in os.environ and "WAYLAND_DISPLAY" not in os.environ:
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    import pygame

    from evodevo.viewer import render

    if checkpoint is not None:
        snap = load_checkpoint(run_dir, checkpoint, MAX_SLOTS)
    else:
        source = LiveSource(run_dir)
        snap = source.poll()
        if snap is None:
            if snapshot_enabled(run_dir) is False or source.note:
                raise ViewError(source.note or _no_snapshot_message(run_dir))
            wait_s = SCREENSHOT_WAIT_S if wait_s is None else wait_s
            print(f"evodevo: waiting up to {wait_s:.0f} s for the first snapshot in {run_dir} ...", file=sys.stderr)
            snap = source.wait(wait_s)
            if snap is None:
                raise ViewError(f"no live snapshot in '{run_dir}' after {wait_s:.0f} s; "
                                f"is the run going (with run.snapshot: true)? Or use --checkpoint latest")
    assets = render.Assets(snap.meta["env_name"])
    ui = on_snapshot(UI(), snap)
    surf = render.draw_frame(assets, snap, ui, render.Status(run_dir.name or str(run_dir), time.time()))
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        pygame.image.save(surf, str(out))
    except (OSError, pygame.error) as e:
        raise ViewError(f"cannot write screenshot {out}: {e}") from None
    print(f"Saved {out} ({surf.get_width()}x{surf.get_height()}, step {snap.step:,})")
    return 0


class Viewer:
    """The window: polls the source, turns events into UI changes, blits the frame."""

    def __init__(self, run_dir: Path, checkpoint: str | None):
        _quiet_pygame()
        self.run_dir = run_dir
        self.live = checkpoint is None
        self.source = LiveSource(run_dir) if self.live else None
        self.snap = None if self.live else load_checkpoint(run_dir, checkpoint, MAX_SLOTS)
        self.ui = UI() if self.snap is None else on_snapshot(UI(), self.snap)
        self.assets = None
        self._message_until = 0.0
        self._shots = 0

    # ---------------------------------------------------------------- helpers

    def _assets(self):
        from evodevo.viewer import render

        name = self.snap.meta["env_name"]
        if self.assets is None or self.assets.env_name != name:
            self.assets = render.Assets(name, self._fonts)
        return self.assets

    def _say(self, message: str):
        self.ui = replace(self.ui, message=message)
        self._message_until = time.monotonic() + MESSAGE_S

    def _frame(self, size):
        from evodevo.viewer import render

        status = render.Status(self.run_dir.name or str(self.run_dir), time.time(),
                               self.source.note if self.source else "")
        if self.snap is None:
            lines = [_no_snapshot_message(self.run_dir), f"waiting for {self.run_dir / SNAPSHOT} ...", "Q: quit"]
            return render.draw_waiting(self._fonts, lines, self.ui, status, size)
        try:
            return render.draw_frame(self._assets(), self.snap, self.ui, status, size)
        except SnapshotError as e:
            return render.draw_waiting(self._fonts, ["cannot draw this snapshot", str(e)], self.ui, status, size)

    def _screenshot(self, surf) -> None:
        import pygame

        step = self.snap.step if self.snap is not None else 0
        self._shots += 1
        name = f"view-step{step:09d}-{self._shots}.png"
        for folder in (self.run_dir / "screenshots", Path.cwd()):
            try:
                folder.mkdir(parents=True, exist_ok=True)
                pygame.image.save(surf, str(folder / name))
                self._say(f"saved {folder / name}")
                return
            except (OSError, pygame.error):
                continue
        self._say("screenshot failed: no writable folder")

    # ---------------------------------------------------------------- the loop

    def run(self) -> int:
        import pygame

        from evodevo.viewer import render

        pygame.display.init()  # display and fonts only: no audio (pygame.init would open the mixer)
        self._fonts = render.Fonts()
        screen = pygame.display.set_mode(render.SIZE, pygame.RESIZABLE)
        pygame.display.set_caption(f"evodevo view {self.run_dir}")
        pygame.key.set_repeat(300, 60)
        clock = pygame.time.Clock()
        if self.live and self.source.poll() is None:
            print(f"evodevo: {_no_snapshot_message(self.run_dir)}; waiting (Q quits)", file=sys.stderr)
        if self.live and self.source.snap is not None:
            self.snap = self.source.snap
            self.ui = on_snapshot(self.ui, self.snap)
        next_poll = 0.0
        next_redraw = 0.0
        dirty = True
        frame = None
        try:
            while True:
                for event in pygame.event.get():
                    if event.type == pygame.QUIT:
                        return 0
                    if event.type == pygame.KEYDOWN:
                        k = self.snap.n_shown if self.snap is not None else 0
                        shift = bool(event.mod & pygame.KMOD_SHIFT)
                        self.ui, command = on_key(self.ui, pygame.key.name(event.key), k, shift)
                        if command == "quit":
                            return 0
                        if command == "screenshot" and frame is not None:
                            self._screenshot(frame)
                        dirty = True
                    elif event.type == pygame.MOUSEBUTTONDOWN and event.button == 1 and self.snap is not None:
                        if not self.ui.show_map and self.assets is not None:
                            i = render.tile_at(self.assets, self.snap, screen.get_size(), event.pos)
                            if i is not None:
                                self.ui = replace(self.ui, selected=i, follow=False)
                                dirty = True
                    elif event.type in (pygame.VIDEORESIZE, pygame.WINDOWEXPOSED):
                        dirty = True
                now = time.monotonic()
                if self.live and not self.ui.paused and now >= next_poll:
                    next_poll = now + POLL_S
                    snap = self.source.poll()
                    if snap is not None:
                        self.snap = snap
                        self.ui = on_snapshot(self.ui, snap)
                        dirty = True
                if self.ui.message and now >= self._message_until:
                    self.ui = replace(self.ui, message="")
                    dirty = True
                if dirty or now >= next_redraw:  # at least once a second: "updated N s ago"
                    frame = self._frame(screen.get_size())
                    if frame.get_size() != screen.get_size():
                        screen = pygame.display.set_mode(frame.get_size(), pygame.RESIZABLE)
                    screen.blit(frame, (0, 0))
                    pygame.display.flip()
                    dirty = False
                    next_redraw = now + 1.0
                clock.tick(FPS)
        finally:
            pygame.quit()
