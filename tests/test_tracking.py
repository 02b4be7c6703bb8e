"""Multi-person tracking on composites of the two real talking faces (and a real portrait still) whose layout,
and so whose ground truth, the tests set: split screen at 1080p, a 2 × 2 grid with an empty tile, shot cuts
between close-ups and a two-shot, a face a tenth of the frame high."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from helpers import ffmpeg, shared_file
from listenerctl.errors import ListenerctlError, NoFaceError
from listenerctl.features import tracking
from listenerctl.features.crop_landmarks import frame_translation
from listenerctl.features.detection import detect_in_tile, merge, open_detector, tiles
from listenerctl.features.face import extract_face, mp_image, open_landmarker
from listenerctl.features.face_descriptors import colour, texture
from listenerctl.features.people import People
from listenerctl.features.reid import Tracklet, colour_distance, group, texture_distance
from listenerctl.features.audio import extract_audio
from listenerctl.features.speaker_choice import choose_speaker
from listenerctl.features.speakers import detect_speakers
from listenerctl.paths import FACE_MODEL
from listenerctl.features.tracking import is_cut, shot_signature, track_people
from listenerctl.media import iter_video_frames, load_audio
from listenerctl.motion import ARKIT52

WIDTH, HEIGHT, FPS = 1920, 1080, 25
SOURCES = {"A": "video/talking_face_8s.mp4", "B": "video/talking_face_b_8s.mp4", "P": "portraits/portrait_1.jpg"}
FACE_SHARE = 0.65  # the source faces' landmark boxes are about 0.65 of their 512 px clip's height


@dataclass
class Placement:
    """Source ``who`` scaled to a ``side`` px square panel at (x, y) of the 1920 × 1080 canvas, its colours
    changed by the ffmpeg filter ``grade`` when given (another camera's look)."""

    who: str
    x: int
    y: int
    side: int
    grade: str = ""

    def contains(self, box: np.ndarray) -> bool:
        """Whether a box [4] (fractions of the frame) has its centre inside this panel."""
        cx, cy = (box[0] + box[2]) / 2 * WIDTH, (box[1] + box[3]) / 2 * HEIGHT
        return self.x <= cx <= self.x + self.side and self.y <= cy <= self.y + self.side


Shot = tuple[int, list[Placement]]  # frames, panels


def compose(path, shots: list[Shot]) -> None:
    """Render ``shots`` one after another at 25 fps on a grey 1080p canvas; each shot shows its sources
    from the moment of the recording the shot starts at, so the faces keep talking across cuts."""
    who = sorted({p.who for _, shots_panels in shots for p in shots_panels})
    inputs: list[str] = []
    for name in who:
        source = str(shared_file(SOURCES[name]))
        inputs += (["-loop", "1", "-framerate", str(FPS), "-t", "8", "-i", source] if source.endswith(".jpg")
                   else ["-i", source])
    uses = {name: sum(p.who == name for _, panels in shots for p in panels) for name in who}
    graph = [f"[{k}:v]split={uses[name]}" + "".join(f"[{name}{u}]" for u in range(uses[name]))
             for k, name in enumerate(who)]
    used = dict.fromkeys(who, 0)
    start = 0
    for s, (frames, panels) in enumerate(shots):
        seconds, begin = frames / FPS, start / FPS
        graph.append(f"color=c=gray:s={WIDTH}x{HEIGHT}:r={FPS}:d={seconds}[bg{s}]")
        last = f"bg{s}"
        for k, p in enumerate(panels):
            label = f"{p.who}{used[p.who]}"
            used[p.who] += 1
            graph.append(f"[{label}]trim=start={begin}:duration={seconds},setpts=PTS-STARTPTS,"
                         f"scale={p.side}:{p.side}" + (f",{p.grade}" if p.grade else "") + f"[p{s}_{k}]")
            graph.append(f"[{last}][p{s}_{k}]overlay={p.x}:{p.y}:shortest=1[o{s}_{k}]")
            last = f"o{s}_{k}"
        graph.append(f"[{last}]null[s{s}]")
        start += frames
    graph.append("".join(f"[s{s}]" for s in range(len(shots))) + f"concat=n={len(shots)}:v=1:a=0,fps={FPS}[out]")
    ffmpeg(*inputs, "-filter_complex", ";".join(graph), "-map", "[out]", "-an", "-c:v", "libx264",
           "-preset", "veryfast", "-pix_fmt", "yuv420p", str(path))


def truth(shots: list[Shot]) -> dict[str, list[tuple[int, Placement]]]:
    """Per source, (frame, panel) for every frame where it is on screen."""
    visible: dict[str, list[tuple[int, Placement]]] = {}
    start = 0
    for frames, panels in shots:
        for p in panels:
            visible.setdefault(p.who, []).extend((t, p) for t in range(start, start + frames))
        start += frames
    return visible


def who_is_who(people: People, shots: list[Shot]) -> dict[str, int]:
    """The person index each source became: the person found in its panel on most of its frames. Asserts each
    source is found there on ≥ 90 % of the frames it is visible, by one person, with every box of that
    person inside the source's panel of the moment (never elsewhere)."""
    identity = {}
    for who, frames in truth(shots).items():
        counts = np.zeros(len(people), int)
        for t, panel in frames:
            for p in range(len(people)):
                counts[p] += bool(people.found[p, t] and panel.contains(people.boxes[p, t]))
        identity[who] = int(np.argmax(counts))
        assert counts.max() >= 0.9 * len(frames), (who, counts, len(frames))
        person = identity[who]
        on_screen = {t: panel for t, panel in frames}
        for t in np.flatnonzero(people.found[person]):
            assert t in on_screen and on_screen[t].contains(people.boxes[person, t]), (who, t)
    assert len(set(identity.values())) == len(identity), identity  # no two sources share a person
    return identity


SPLIT = [(30, [Placement("A", 400, 380, 320), Placement("B", 1200, 380, 320)]),  # faces ~1/5 of the height
         (8, [Placement("B", 1200, 380, 320)]),  # A hidden for 0.32 s (no cut: the rest of the frame stays)
         (37, [Placement("A", 400, 380, 320), Placement("B", 1200, 380, 320)])]
GRID = [(75, [Placement("A", 300, 30, 480), Placement("B", 1100, 30, 480), Placement("P", 1400, 570, 480)])]
CUTS = [(20, [Placement("A", 510, 90, 900)]),  # A close-up
        (20, [Placement("B", 300, 120, 900)]),  # B close-up, overlapping where A was
        (20, [Placement("A", 400, 380, 320), Placement("B", 1200, 380, 320)]),  # two-shot
        (20, [Placement("A", 900, 200, 700, "eq=brightness=0.06:contrast=1.2")]),  # A again, brighter, where B was
        (20, [Placement("B", 510, 240, 600)])]
SMALL = [(75, [Placement("A", 200, 700, 160), Placement("B", 1100, 200, 480)])]  # A's face ~1/10 of the height
TINY = [(25, [Placement("A", 700, 500, 84)])]  # a face ~1/20 of the height


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """Each layout's name → (shots, video path, People), built and tracked once per module."""
    folder = tmp_path_factory.mktemp("layouts")
    cache = folder / "cache"
    result = {}

    def layout(name: str):
        if name not in result:
            shots = {"split": SPLIT, "grid": GRID, "cuts": CUTS, "small": SMALL, "tiny": TINY}[name]
            path = folder / f"{name}.mp4"
            compose(path, shots)
            total = sum(frames for frames, _ in shots)  # ffmpeg's concat may drop the last frame: pad to it
            result[name] = shots, path, track_people(path, num_frames=total, cache_dir=cache)
        return result[name]

    return layout


def test_split_screen_faces_a_fifth_high_are_both_tracked_left_to_right(tracked):
    shots, path, people = tracked("split")
    assert len(people) == 2 and people.num_frames == 75 and people.frame_size == (WIDTH, HEIGHT)
    assert who_is_who(people, shots) == {"A": 0, "B": 1}  # numbered from the left; A the same after hiding
    assert not people.found[0, 30:38].any() and people.found[0, 40:].all()
    heights = np.nanmedian(people.boxes[:, :, 3] - people.boxes[:, :, 1], axis=1)
    assert np.allclose(heights, FACE_SHARE * 320 / HEIGHT, rtol=0.25)  # ≈ 0.19 of the frame's height
    assert people.arkit.shape == (2, 75, 58) and np.isnan(people.arkit[~people.found]).all()
    weights = people.arkit[people.found][:, :52]
    assert weights.min() >= 0 and weights.max() <= 1
    jaw = people.arkit[:, :, ARKIT52.index("jawOpen")]
    assert (np.nanmax(jaw, axis=1) - np.nanmin(jaw, axis=1) > 0.15).all()  # both talk
    assert people.thumbnails.shape == (2, tracking.THUMB_PX, tracking.THUMB_PX, 3) and people.thumbnails.std() > 10


def test_grid_with_an_empty_tile_gives_three_people(tracked):
    shots, _, people = tracked("grid")
    assert len(people) == 3
    assert who_is_who(people, shots) == {"A": 0, "B": 1, "P": 2}


def test_identities_survive_cuts_between_close_ups_and_a_two_shot(tracked):
    shots, _, people = tracked("cuts")
    assert len(people) == 2
    identity = who_is_who(people, shots)  # each person's boxes only ever where that source was: no swaps
    assert identity == {"A": 1, "B": 0}  # numbered by median centre: B's (810 px) is left of A's (960 px)
    assert people.found[identity["A"], 60:80].mean() >= 0.9  # A seen again after B's close-up: same person


def test_a_face_a_tenth_of_the_frame_high_is_found(tracked):
    shots, path, people = tracked("small")
    assert len(people) == 2
    identity = who_is_who(people, shots)
    height = np.nanmedian(people.boxes[identity["A"], :, 3] - people.boxes[identity["A"], :, 1])
    assert 0.07 < height < 0.12


def test_a_face_a_twentieth_of_the_frame_high_is_found(tracked):
    shots, _, people = tracked("tiny")
    assert len(people) == 1 and who_is_who(people, shots) == {"A": 0}
    assert np.nanmedian(people.boxes[0, :, 3] - people.boxes[0, :, 1]) < 0.06


def test_tiles_find_the_small_face_the_whole_frame_misses(tracked):
    _, path, _ = tracked("small")
    frame = next(iter(iter_video_frames(path)))
    small_panel = Placement("A", 200, 700, 160)
    with open_detector(FACE_MODEL) as detector:
        regions = tiles(WIDTH, HEIGHT)
        whole = merge([detect_in_tile(detector, frame, regions[0])])
        tiled = merge([detect_in_tile(detector, frame, region) for region in regions])
    in_panel = [small_panel.contains(box / [WIDTH, HEIGHT, WIDTH, HEIGHT]) for box in tiled]
    assert len(tiled) == 2 and sum(in_panel) == 1
    assert not any(small_panel.contains(box / [WIDTH, HEIGHT, WIDTH, HEIGHT]) for box in whole)


def test_one_face_video_gives_one_person_matching_extract_face(tmp_path):
    video = shared_file(SOURCES["A"])
    done: list[int] = []
    people = track_people(video, num_frames=50, cache_dir=tmp_path, progress=done.append)
    assert len(people) == 1 and people.found[0].mean() >= 0.95 and done == list(range(1, 51))
    single = extract_face(video, num_frames=50, cache_dir=tmp_path)
    ours = people.face(0)
    for name in ("jawOpen", "eyeBlinkLeft", "mouthSmileLeft"):
        k = ARKIT52.index(name)
        assert np.corrcoef(ours.arkit[:, k], single.arkit[:, k])[0, 1] > 0.9, name
    for k in (52, 53, 54):  # pitch, yaw, roll follow the same motion
        assert np.corrcoef(ours.arkit[:, k], single.arkit[:, k])[0, 1] > 0.8, k


def test_cache_hit_skips_mediapipe_and_a_faceless_video_has_no_one(tmp_path, monkeypatch):
    video = tmp_path / "bars.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-t", "1", "-pix_fmt", "yuv420p", str(video))
    people = track_people(video, cache_dir=tmp_path)
    assert len(people) == 0 and people.arkit.shape == (0, 25, 58)
    with pytest.raises(NoFaceError):
        people.largest()

    def no_landmarker(*args, **kwargs):
        raise AssertionError("MediaPipe ran although the result was cached")

    monkeypatch.setattr(tracking, "open_landmarker", no_landmarker)
    again = track_people(video, cache_dir=tmp_path)
    assert len(again) == 0 and again.num_frames == 25


def test_cuts_are_found_exactly_at_the_shot_boundaries(tracked):
    _, path, _ = tracked("cuts")
    signatures = [shot_signature(frame) for frame in iter_video_frames(path)]
    cuts = [t for t in range(1, len(signatures)) if is_cut(signatures[t - 1], signatures[t])]
    assert cuts == [20, 40, 60, 80]


def test_selection_by_size_index_and_point(tracked):
    shots, _, people = tracked("small")
    identity = who_is_who(people, shots)
    assert people.largest() == identity["B"]  # B's panel is three times A's
    assert people.nth(1) == 1
    with pytest.raises(ListenerctlError, match=r"^face 2 was asked for but 2 people were seen"):
        people.nth(2)
    assert people.nearest(280, 780) == identity["A"]  # a point in A's panel
    assert people.nearest(1900, 100) == identity["B"]
    with pytest.raises(ListenerctlError, match="outside the 1920x1080 video"):
        people.nearest(2000, 10)


@pytest.mark.parametrize("size", [(1920, 1080), (720, 1280), (512, 512)])
def test_tiles_hold_every_face_up_to_half_a_tile_whole(size):
    width, height = size
    regions = np.array(tiles(width, height))
    assert tuple(regions[0]) == (0, 0, width, height)
    squares = regions[1:]
    assert (squares[:, 0] + squares[:, 2] <= width).all() and (squares[:, 1] + squares[:, 3] <= height).all()
    rng = np.random.default_rng(0)
    for _ in range(500):
        side = rng.uniform(0.05, 0.5) * min(width, height)
        x, y = rng.uniform(0, width - side), rng.uniform(0, height - side)
        fits = ((squares[:, 0] <= x) & (squares[:, 1] <= y) & (x + side <= squares[:, 0] + squares[:, 2])
                & (y + side <= squares[:, 1] + squares[:, 3]) & (side <= squares[:, 2] * 0.5 + 1e-9))
        assert fits.any(), (x, y, side)


def test_translation_from_a_crop_maps_back_to_the_frame():
    # a crop that is the whole (square) frame changes nothing
    assert np.allclose(frame_translation(np.array([3.0, -2.0, -40.0]), (0, 0), 512, (512, 512)), [3.0, -2.0, -40.0])
    # a face centred in a crop a quarter of the frame's height, itself centred, is 4 times as far away
    assert np.allclose(frame_translation(np.array([0.0, 0.0, -40.0]), (825, 405), 270, (1920, 1080)),
                       [0.0, 0.0, -160.0])
    # a crop right of centre puts the head right of the camera's axis (x to the image's right)
    assert frame_translation(np.array([0.0, 0.0, -40.0]), (1500, 405), 270, (1920, 1080))[0] > 0


def test_texture_ignores_a_change_of_camera_colours_that_colour_cannot():
    def descriptors(frame):
        with open_landmarker(False, 1) as landmarker:
            result = landmarker.detect(mp_image(frame))
        points = np.array([(p.x, p.y, p.z) for p in result.face_landmarks[0]])
        box = np.concatenate([points[:, :2].min(axis=0), points[:, :2].max(axis=0)]) * frame.shape[0]
        return colour(frame, box), texture(frame, points)

    a = next(iter(iter_video_frames(shared_file(SOURCES["A"]))))
    b = next(iter(iter_video_frames(shared_file(SOURCES["B"]))))
    warmer = np.clip(a * np.array([1.15, 1.0, 0.8]) * 1.1 + 10, 0, 255).astype(np.uint8)  # white balance, gain
    (colour_a, texture_a), (colour_warm, texture_warm), (colour_b, texture_b) = map(descriptors, (a, warmer, b))
    assert texture_distance(texture_a, texture_warm) < 0.25 * texture_distance(texture_a, texture_b)
    assert colour_distance(colour_a, colour_warm) > colour_distance(colour_a, colour_b)  # colour alone would fail


def test_people_in_view_together_are_never_merged_however_alike():
    def tracklet(start, frames, colour_hist, texture_hist):
        return Tracklet(start=start, rows=[np.zeros(58)] * frames, boxes=[np.zeros(4)] * frames,
                        colour_sum=colour_hist * frames, texture_sum=texture_hist * frames)

    same_colour, same_texture = np.full(64, 1 / 64), np.full(944, 1 / 944)
    twins = [tracklet(0, 50, same_colour, same_texture), tracklet(10, 30, same_colour, same_texture)]
    later = tracklet(60, 20, same_colour, same_texture)  # looks the same, seen after both: joins one of them
    other = np.zeros(64)
    other[:8] = 1 / 8
    stranger = tracklet(90, 20, other, same_texture)  # other colours, alone in view: a new person
    people = group(twins + [later, stranger])
    assert sorted(len(p) for p in people) == [1, 1, 2]
    assert not any(twins[0] in p and twins[1] in p for p in people)
    assert [stranger] in people


@pytest.mark.parametrize("name", ["split", "grid", "cuts", "small"])
@pytest.mark.parametrize("talker", ["A", "B"])
def test_face_auto_picks_whoever_talks_in_every_layout(tracked, name, talker):
    """The layouts with one mixed track, the talker's own audio (the other person's mouth keeps moving, out of
    sync): tracking + speaker detection + `--face auto` choose the talker's person, and one talker is no dialogue."""
    shots, _, people = tracked(name)
    identity = who_is_who(people, shots)
    samples = load_audio(shared_file(SOURCES[talker]))[:people.num_frames * 640]  # 16 kHz: 640 samples a frame
    choice = choose_speaker(people, detect_speakers(people, extract_audio(samples, FPS, people.num_frames)))
    assert choice.person == identity[talker] and not choice.follows, choice.note


def test_a_dialogue_on_a_split_screen_is_followed_turn_by_turn(tmp_path):
    """8 s split screen at 1080p, both faces always moving their mouths; the one mixed track is A's own audio for
    the first 4 s and B's for the last 4 s: the turns are found and the speaker face follows them."""
    frames = 200
    shots = [(frames, [Placement("A", 400, 380, 320), Placement("B", 1200, 380, 320)])]
    path = tmp_path / "dialogue.mp4"
    compose(path, shots)
    people = track_people(path, num_frames=frames, cache_dir=tmp_path / "cache")
    identity = who_is_who(people, shots)
    half = frames // 2 * 640  # 16 kHz: 640 samples a frame
    samples = np.concatenate([load_audio(shared_file(SOURCES["A"]))[:half],
                              load_audio(shared_file(SOURCES["B"]))[half:2 * half]])
    audio = extract_audio(samples, FPS, frames)
    speakers = detect_speakers(people, audio)
    truth = np.repeat([identity["A"], identity["B"]], frames // 2)
    speech = audio.vad
    assert (speakers.active[speech] == truth[speech]).mean() >= 0.9
    choice = choose_speaker(people, speakers)
    assert choice.follows and [t.person for t in choice.turns] == [identity["A"], identity["B"]], choice.note
