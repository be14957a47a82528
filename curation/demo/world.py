"""The rooms a demo draws its samples from, with their rendered still views and (lazily) their video tours."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from curation.demo.rooms import Room, build_room
from curation.demo.views import Tour, View, analyse_view, render_tour

SOURCES = ["scannet", "scannetpp", "arkitscenes", "hypersim", "sunrgbd"]


@dataclass
class World:
    """Training rooms (``rooms``) and benchmark-only rooms (``bench_rooms``) of one demo."""

    rooms: list[Room]
    bench_rooms: list[Room]
    views: dict[str, list[View]]
    _tours: dict[tuple[str, int], Tour] = field(default_factory=dict)
    used_videos: set[tuple[str, int]] = field(default_factory=set)

    def tour(self, room: Room, index: int) -> Tour:
        key = (room.room_id, index)
        if key not in self._tours:
            self._tours[key] = render_tour(room, index)
        return self._tours[key]

    def use_video(self, tour: Tour) -> str:
        """Mark a tour's MP4 as needed on disk and return its path relative to the video JSON."""
        self.used_videos.add((tour.room.room_id, tour.index))
        return f"videos/{tour.name}.mp4"

    def room(self, room_id: str) -> Room:
        return next(r for r in self.rooms + self.bench_rooms if r.room_id == room_id)

    def pick_view(self, rng: np.random.Generator, min_answerable: int = 1) -> View | None:
        for _ in range(20):
            room = self.rooms[int(rng.integers(len(self.rooms)))]
            view = self.views[room.room_id][int(rng.integers(len(room.poses)))]
            if len(view.answerable()) >= min_answerable:
                return view
        return None

    def pick_views(self, rng: np.random.Generator, n: int) -> list[View] | None:
        """``n`` distinct views of one room whose first view shares a visible object with each other view."""
        for _ in range(20):
            room = self.rooms[int(rng.integers(len(self.rooms)))]
            views = self.views[room.room_id]
            first = views[int(rng.integers(len(views)))]
            if not first.answerable():
                continue
            first_ids = {s.obj.index for s in first.seen}
            others = [v for v in views if v is not first and first_ids & {s.obj.index for s in v.seen}]
            if len(others) >= n - 1:
                picks = rng.choice(len(others), size=n - 1, replace=False)
                return [first, *[others[int(i)] for i in picks]]
        return None


def build_world(seed: int, n_rooms: int, n_bench_rooms: int, n_cameras: int = 8) -> World:
    """Build and render every room; each room has its own random stream so rooms do not depend on each other."""
    rooms, bench = [], []
    for k in range(n_rooms + n_bench_rooms):
        rng = np.random.default_rng([seed, 1, k])
        split = "train" if k < n_rooms else "benchmark"
        source = SOURCES[int(rng.integers(len(SOURCES)))] if split == "train" else ["scannet", "arkitscenes"][k % 2]
        room = build_room(f"room_{k:04d}", rng, n_cameras=n_cameras, source=source, split=split)
        (rooms if split == "train" else bench).append(room)
    views = {r.room_id: [analyse_view(r, i) for i in range(len(r.poses))] for r in rooms}
    return World(rooms, bench, views)
