"""Skeleton renderer: BEAT bodies as shaded capsules (moderngl offscreen, EGL), the face rig on the head.

Joint positions come from `data.beat.forward_kinematics` over the BVH header's hierarchy and offsets
(beat141 motion animates its 47 upper-body joints; the others stay at rest). Every bone, parent to
child joint, is a capsule: one instanced unit cylinder plus a unit sphere at each end, so a frame is two
draw calls. The camera is orthographic, looking down -z at the upper body (BVH units, cm; y up; the
subject faces +z, their left at +x — the face rig's axes).

With a face, the head capsule is left out and the face rig (`renderers.mesh.MeshRenderer`: ARKit
weights, the head turned by the skeleton's head orientation) is rendered into a tile at the same scale
and pasted over the head: the pixels of a head-shaped ellipse that are not background.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from listenerctl.data.beat import Skeleton, expand_beat141, forward_kinematics
from listenerctl.errors import ListenerctlError
from listenerctl.features.face import head_pose
from listenerctl.motion import ARKIT52, get_spec
from renderers.face_rig import NECK_PIVOT
from renderers.gl import create_context, is_software
from renderers.mesh import BACKGROUND, CAMERA_POSITION_CM, FRAME_HALF_HEIGHT_CM, MeshRenderer

VIEW_CENTRE_CM = (0.0, 33.0)   # x, y of the view centre: the chest of a BEAT skeleton standing at the origin
VIEW_HALF_SIZE_CM = 72.0       # half the width and height shown: outstretched hands to the top of the head
DEPTH_RANGE_CM = 250.0
HEAD_JOINT = "Head"
HEAD_CENTRE_CM = np.array([0.0, 1.5, -3.0])  # face-rig point the cut-out ellipse centres on
HEAD_RADII_CM = (10.5, 13.0)                 # cut-out ellipse half-width and half-height
CYLINDER_SEGMENTS, SPHERE_RINGS = 16, 8

# Capsule radius (cm) and RGB colour of a bone by the first matching fragment of its parent joint's name
# (the joint the bone hangs from: ForeArm → Hand is the forearm).
SKIN, SHIRT, TROUSERS = (0.80, 0.60, 0.50), (0.30, 0.42, 0.62), (0.22, 0.24, 0.30)
BONE_STYLE = (
    ("Thumb", 0.75, SKIN), ("Index", 0.65, SKIN), ("Middle", 0.65, SKIN), ("Ring", 0.6, SKIN),
    ("Pinky", 0.55, SKIN), ("Hand", 1.2, SKIN), ("ForeArm", 2.8, SHIRT), ("Shoulder", 3.8, SHIRT),
    ("Arm", 3.4, SHIRT), ("Head", 6.5, SKIN), ("Neck", 3.6, SKIN), ("Spine", 7.0, SHIRT), ("Hips", 7.0, SHIRT),
    ("UpLeg", 5.5, TROUSERS), ("Leg", 4.5, TROUSERS), ("Foot", 3.0, TROUSERS), ("Toe", 2.6, TROUSERS),
)
DEFAULT_STYLE = (3.0, (0.5, 0.5, 0.5))

_VERTEX = """
#version 330
uniform mat4 u_proj;
in vec3 in_pos;
in vec3 in_normal;
in vec4 in_m0;
in vec4 in_m1;
in vec4 in_m2;
in vec4 in_m3;
in vec3 in_color;
out vec3 v_normal;
out vec3 v_color;
void main() {
    mat4 model = mat4(in_m0, in_m1, in_m2, in_m3);
    v_normal = mat3(model) * in_normal;
    v_color = in_color;
    gl_Position = u_proj * model * vec4(in_pos, 1.0);
}
"""

_FRAGMENT = """
#version 330
in vec3 v_normal;
in vec3 v_color;
out vec4 f_color;
const vec3 KEY = normalize(vec3(-0.4, 0.6, 1.0));
void main() {
    vec3 n = normalize(v_normal);
    float diffuse = max(dot(n, KEY), 0.0);
    float rim = pow(1.0 - max(n.z, 0.0), 3.0) * 0.15;
    vec3 color = v_color * (0.35 + 0.75 * diffuse) + rim;
    f_color = vec4(clamp(color, 0.0, 1.0), 1.0);
}
"""


def _cylinder(segments: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit open cylinder along +y from y=0 to y=1, radius 1: positions [2S, 3], normals, triangles [2S, 3]."""
    angle = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    ring = np.stack([np.cos(angle), np.zeros(segments), np.sin(angle)], axis=1)
    positions = np.concatenate([ring, ring + [0.0, 1.0, 0.0]])
    i = np.arange(segments)
    j = (i + 1) % segments
    triangles = np.concatenate([np.stack([i, i + segments, j], 1), np.stack([j, i + segments, j + segments], 1)])
    return positions, np.concatenate([ring, ring]), triangles


def _sphere(rings: int, segments: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit UV sphere: positions = normals [(R+1)·S, 3], triangles."""
    polar = np.linspace(0, np.pi, rings + 1)[:, None]
    azimuth = np.linspace(0, 2 * np.pi, segments, endpoint=False)[None]
    positions = np.stack([np.sin(polar) * np.cos(azimuth), np.cos(polar) * np.ones_like(azimuth),
                          np.sin(polar) * np.sin(azimuth)], axis=-1).reshape(-1, 3)
    r, s = np.meshgrid(np.arange(rings), np.arange(segments), indexing="ij")
    a, b = r * segments + s, r * segments + (s + 1) % segments
    triangles = np.concatenate([np.stack([a, a + segments, b], -1), np.stack([b, a + segments, b + segments], -1)])
    return positions, positions, triangles.reshape(-1, 3)


def _bone_frames(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Rotations [..., 3, 3] taking +y to the unit direction from ``start`` to ``end`` [..., 3]."""
    axis_y = end - start
    axis_y = axis_y / np.maximum(np.linalg.norm(axis_y, axis=-1, keepdims=True), 1e-9)
    helper = np.where(np.abs(axis_y[..., :1]) < 0.9, [1.0, 0.0, 0.0], [0.0, 0.0, 1.0])
    axis_z = np.cross(helper, axis_y)
    axis_z /= np.linalg.norm(axis_z, axis=-1, keepdims=True)
    return np.stack([np.cross(axis_y, axis_z), axis_y, axis_z], axis=-1)


def _bone_style(name: str) -> tuple[float, tuple[float, float, float]]:
    return next(((r, c) for fragment, r, c in BONE_STYLE if fragment in name), DEFAULT_STYLE)


def _head_axes_skeleton(skeleton: Skeleton) -> Skeleton:
    """``skeleton`` plus three unit children of the head joint, whose positions minus the head's are the
    columns of the head's world rotation (so `forward_kinematics` yields it)."""
    head = skeleton.index(HEAD_JOINT)
    rotations = ("Xrotation", "Yrotation", "Zrotation")
    return Skeleton(skeleton.names + ("_headX", "_headY", "_headZ"),
                    np.concatenate([skeleton.parents, [head] * 3]),
                    np.concatenate([skeleton.offsets, np.eye(3)]),
                    skeleton.channels + (rotations,) * 3, skeleton.end_sites)


class _Scene:
    """The GL side shared by the body renderers: context, framebuffers, the instanced shading program, the
    orthographic upper-body camera. ``_begin()`` clears a frame, ``_finish()`` reads it back."""

    def __init__(self, size: int, antialias: int | None, instance_capacity: int):
        self.size = int(size)
        self.ctx = create_context()
        if antialias is None:
            antialias = 1 if is_software(self.ctx) else 4
        samples = min(antialias, self.ctx.max_samples) if antialias > 1 else 0
        self._fbo = self.ctx.framebuffer(self.ctx.renderbuffer((self.size, self.size)),
                                         self.ctx.depth_renderbuffer((self.size, self.size)))
        self._msaa = None if not samples else self.ctx.framebuffer(
            self.ctx.renderbuffer((self.size, self.size), samples=samples),
            self.ctx.depth_renderbuffer((self.size, self.size), samples=samples))
        self._prog = self.ctx.program(vertex_shader=_VERTEX, fragment_shader=_FRAGMENT)
        self._prog["u_proj"].write(_projection().T.astype(np.float32).tobytes())
        self._instances = self.ctx.buffer(reserve=instance_capacity * 19 * 4, dynamic=True)

    def _vao(self, vbo, triangles: np.ndarray):
        """A vertex array of ``vbo`` (position, normal per vertex) drawn once per instance of the buffer."""
        return self.ctx.vertex_array(self._prog, [(vbo, "3f 3f", "in_pos", "in_normal"),
                                                  (self._instances, "4f 4f 4f 4f 3f/i", "in_m0", "in_m1", "in_m2",
                                                   "in_m3", "in_color")],
                                     self.ctx.buffer(triangles.astype(np.int32).tobytes()))

    def _draw_instances(self, vao, matrices: np.ndarray, colors: np.ndarray) -> None:
        """Draw ``vao`` once per model matrix [N, 4, 4] (row-major) with its colour [N, 3]."""
        # column-major mat4 per instance (GLSL reads in_m0 … in_m3 as the columns), then its colour
        data = np.concatenate([np.swapaxes(matrices, 1, 2).reshape(len(matrices), 16), colors], axis=1)
        self._instances.orphan(self._instances.size)
        self._instances.write(data.astype(np.float32).tobytes())
        vao.render(instances=len(matrices))

    def _begin(self) -> None:
        target = self._msaa or self._fbo
        target.use()
        target.clear(*BACKGROUND, 1.0)
        self.ctx.enable(self.ctx.DEPTH_TEST)

    def _finish(self) -> np.ndarray:
        if self._msaa is not None:
            self.ctx.copy_framebuffer(self._fbo, self._msaa)
        raw = self._fbo.read(components=3, alignment=1)
        return np.frombuffer(raw, np.uint8).reshape(self.size, self.size, 3)[::-1].copy()

    @property
    def pixels_per_cm(self) -> float:
        return self.size / (2 * VIEW_HALF_SIZE_CM)

    def _view_pixels(self, points: np.ndarray) -> np.ndarray:
        """Pixel (column, row) [..., 2] in the view of world points [..., 3] cm."""
        cx, cy = VIEW_CENTRE_CM
        ppc = self.pixels_per_cm
        return np.stack([self.size / 2 + (points[..., 0] - cx) * ppc, self.size / 2 - (points[..., 1] - cy) * ppc], -1)

    def release(self) -> None:
        """Free the GL context."""
        self.ctx.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _projection() -> np.ndarray:
    """Orthographic projection [4, 4] of the upper-body view (row-major)."""
    cx, cy = VIEW_CENTRE_CM
    h = VIEW_HALF_SIZE_CM
    proj = np.diag([1.0 / h, 1.0 / h, -1.0 / DEPTH_RANGE_CM, 1.0])
    proj[:2, 3] = [-cx / h, -cy / h]
    return proj


class SkeletonRenderer(_Scene):
    """Render beat141 poses as RGB uint8 frames [size, size, 3]: capsules, plus the face rig on the head
    when expression weights are given.

    ``antialias`` is the MSAA sample count (None: 4 on a GPU, 1 on Mesa's CPU rasteriser).
    """

    def __init__(self, skeleton: Skeleton, size: int = 512, antialias: int | None = None):
        if HEAD_JOINT not in skeleton.names:
            raise ValueError(f"the skeleton has no {HEAD_JOINT} joint to put the face on")
        self.skeleton = skeleton
        self._axes_skeleton = _head_axes_skeleton(skeleton)
        self._head = skeleton.index(HEAD_JOINT)
        bones = [j for j in range(skeleton.num_joints)
                 if skeleton.parents[j] >= 0 and np.linalg.norm(skeleton.offsets[j]) > 1e-6]
        self._bones = np.array(bones)
        styles = [_bone_style(skeleton.names[skeleton.parents[j]]) for j in bones]
        self._radii = np.array([r for r, _ in styles], np.float32)
        self._colors = np.array([c for _, c in styles], np.float32)
        self._body_only = np.array([skeleton.parents[j] != self._head for j in bones])
        super().__init__(size, antialias, instance_capacity=2 * len(bones))
        self._shapes = []
        for positions, normals, triangles in (_cylinder(CYLINDER_SEGMENTS), _sphere(SPHERE_RINGS, CYLINDER_SEGMENTS)):
            vbo = self.ctx.buffer(np.concatenate([positions, normals], axis=1).astype(np.float32).tobytes())
            self._shapes.append(self._vao(vbo, triangles))
        self._face: MeshRenderer | None = None

    def pose(self, beat141: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Joint positions [B, J, 3] cm and head world rotations [B, 3, 3] for beat141 rows [B, 141]."""
        beat141 = np.asarray(beat141, np.float64).reshape(-1, get_spec("beat141").dim)
        rotations = expand_beat141(self.skeleton, beat141)
        rotations = np.concatenate([rotations, np.zeros((len(beat141), 3, 3))], axis=1)
        positions = forward_kinematics(self._axes_skeleton, rotations)
        head = positions[:, self._head]
        return positions[:, :self.skeleton.num_joints], np.swapaxes(positions[:, -3:] - head[:, None], 1, 2)

    def render_batch(self, beat141: np.ndarray, expression: np.ndarray | None = None) -> np.ndarray:
        """beat141 [B, 141] degrees (+ beatface51 weights [B, 51]) → RGB uint8 [B, size, size, 3]."""
        positions, head_rotations = self.pose(beat141)
        with self.ctx:  # this renderer's context current: the face renderer has its own
            frames = np.stack([self._draw(p, with_head=expression is None) for p in positions])
        if expression is not None:
            self._paste_faces(frames, positions[:, self._head], head_rotations,
                              np.asarray(expression, np.float32).reshape(len(frames), -1))
        return frames

    def _draw(self, positions: np.ndarray, with_head: bool) -> np.ndarray:
        keep = slice(None) if with_head else self._body_only
        bones, radii, colors = self._bones[keep], self._radii[keep], self._colors[keep]
        start, end = positions[self.skeleton.parents[bones]], positions[bones]
        length = np.linalg.norm(end - start, axis=1)
        n = len(bones)
        cylinders = np.tile(np.eye(4), (n, 1, 1))
        cylinders[:, :3, :3] = _bone_frames(start, end) * np.stack([radii, length, radii], 1)[:, None, :]
        cylinders[:, :3, 3] = start
        spheres = np.tile(np.eye(4), (2 * n, 1, 1))
        spheres[:, :3, :3] *= np.concatenate([radii, radii])[:, None, None]
        spheres[:, :3, 3] = np.concatenate([start, end])
        self._begin()
        self._draw_instances(self._shapes[0], cylinders, colors)
        self._draw_instances(self._shapes[1], spheres, np.concatenate([colors, colors]))
        return self._finish()

    # ---- the face on the head -----------------------------------------------------------------------
    def _face_renderer(self) -> MeshRenderer:
        if self._face is None:
            self._face = MeshRenderer(size=int(round(2 * FRAME_HALF_HEIGHT_CM * self.pixels_per_cm)))
        return self._face

    def _tile_pixels(self, points: np.ndarray, tile: int) -> np.ndarray:
        """Pixel (column, row) [..., 2] in a face tile of rig-space points [..., 3] cm (its pinhole camera)."""
        camera = np.asarray(CAMERA_POSITION_CM)
        scale = camera[2] / (camera[2] - points[..., 2]) * (tile / 2) / FRAME_HALF_HEIGHT_CM
        rel = (points[..., :2] - camera[:2]) * scale[..., None]
        return np.stack([tile / 2 + rel[..., 0], tile / 2 - rel[..., 1]], axis=-1)

    def _paste_faces(self, frames: np.ndarray, heads: np.ndarray, rotations: np.ndarray,
                     expression: np.ndarray) -> None:
        """Render the face rig for each frame and paste its head over the skeleton's head joint, in place."""
        face = self._face_renderer()
        arkit = np.zeros((len(frames), len(ARKIT52) + 6), np.float32)
        arkit[:, :expression.shape[1]] = expression
        matrices = np.tile(np.eye(4), (len(frames), 1, 1))
        matrices[:, :3, :3] = rotations
        arkit[:, len(ARKIT52):len(ARKIT52) + 3] = head_pose(matrices)[:, :3]
        tiles = face.render_batch(arkit)
        t = face.size
        background = np.round(np.asarray(BACKGROUND) * 255)
        rows, cols = np.mgrid[0:t, 0:t]
        for frame, tile, head, rotation in zip(frames, tiles, heads, rotations):
            pivot = self._tile_pixels(NECK_PIVOT.astype(np.float64), t)
            centre_rig = NECK_PIVOT + rotation @ (HEAD_CENTRE_CM - NECK_PIVOT)
            centre = self._tile_pixels(centre_rig, t)
            px = HEAD_RADII_CM[0] * self.pixels_per_cm, HEAD_RADII_CM[1] * self.pixels_per_cm
            inside = ((cols - centre[0]) / px[0]) ** 2 + ((rows - centre[1]) / px[1]) ** 2 <= 1.0
            mask = inside & (np.abs(tile.astype(np.int16) - background).max(axis=-1) > 3)
            offset = np.round(self._view_pixels(head) - pivot).astype(int)
            self._blit(frame, tile, mask, offset)

    @staticmethod
    def _blit(frame: np.ndarray, tile: np.ndarray, mask: np.ndarray, offset: np.ndarray) -> None:
        """Copy ``tile`` pixels where ``mask`` onto ``frame`` with the tile's top-left at ``offset`` (col, row)."""
        h, w = frame.shape[:2]
        x0, y0 = offset
        cx0, cy0 = max(0, -x0), max(0, -y0)
        cx1, cy1 = min(tile.shape[1], w - x0), min(tile.shape[0], h - y0)
        if cx1 <= cx0 or cy1 <= cy0:
            return
        region = frame[y0 + cy0:y0 + cy1, x0 + cx0:x0 + cx1]
        m = mask[cy0:cy1, cx0:cx1]
        region[m] = tile[cy0:cy1, cx0:cx1][m]

    def release(self) -> None:
        """Free the GL contexts."""
        if self._face is not None:
            self._face.release()
        super().release()


# ---- SMPL-X bodies (optional: the `smplx` package and the user's SMPL-X model files) ------------------

SMPLX_MODEL_FILES = ("SMPLX_NEUTRAL.npz", "SMPLX_NEUTRAL.pkl")
SMPLX_JAW_OPEN_RAD = 0.38  # jaw rotation at jawOpen = 1, as the face rig
SMPLX_COLOR = (0.72, 0.62, 0.56)
# SMPL-X body_pose joints (1-based joint index - 1 = row) driven by products of BEAT joint rotations;
# spine2/spine3/head stay at rest (BEAT's Spine1-3 and Head are not in beat141).
SMPLX_BODY = {"spine1": (2, ("Spine",)), "neck": (11, ("Neck", "Neck1")),
              "left_collar": (12, ("LeftShoulder",)), "right_collar": (13, ("RightShoulder",)),
              "left_shoulder": (15, ("LeftArm",)), "right_shoulder": (16, ("RightArm",)),
              "left_elbow": (17, ("LeftForeArm",)), "right_elbow": (18, ("RightForeArm",)),
              "left_wrist": (19, ("LeftHand",)), "right_wrist": (20, ("RightHand",))}
# SMPL-X hand joints in its order; a BEAT finger base (metacarpal) folds into the first phalanx.
SMPLX_FINGERS = (("Index", ("HandIndex", "HandIndex1"), "HandIndex2", "HandIndex3"),
                 ("Middle", ("HandMiddle1",), "HandMiddle2", "HandMiddle3"),
                 ("Pinky", ("HandPinky", "HandPinky1"), "HandPinky2", "HandPinky3"),
                 ("Ring", ("HandRing", "HandRing1"), "HandRing2", "HandRing3"),
                 ("Thumb", ("HandThumb1",), "HandThumb2", "HandThumb3"))


def beat_to_smplx_pose(beat141: np.ndarray) -> dict[str, np.ndarray]:
    """SMPL-X pose parameters (axis-angle, radians) from beat141 rows [B, 141]: body_pose [B, 63],
    left_hand_pose / right_hand_pose [B, 45], jaw-free. BEAT's and SMPL-X's joint frames are both
    aligned with the world axes in their T-poses, so local rotations carry over joint for joint."""
    from scipy.spatial.transform import Rotation

    from listenerctl.motion import BEAT_JOINTS47

    beat141 = np.asarray(beat141, np.float64).reshape(-1, len(BEAT_JOINTS47), 3)
    b = len(beat141)
    matrices = Rotation.from_euler("XYZ", beat141.reshape(-1, 3), degrees=True).as_matrix().reshape(b, -1, 3, 3)

    def chain(names: tuple[str, ...]) -> np.ndarray:
        out = np.tile(np.eye(3), (b, 1, 1))
        for name in names:
            out = out @ matrices[:, BEAT_JOINTS47.index(name)]
        return Rotation.from_matrix(out).as_rotvec()

    body = np.zeros((b, 21, 3))
    for row, names in SMPLX_BODY.values():
        body[:, row] = chain(names)
    hands = {}
    for side in ("Left", "Right"):
        joints = [chain(tuple(side + n for n in first)) if k == 0 else chain((side + first,))
                  for _, *parts in SMPLX_FINGERS for k, first in enumerate(parts)]
        hands[f"{side.lower()}_hand_pose"] = np.stack(joints, axis=1).reshape(b, 45)
    return {"body_pose": body.reshape(b, 63), **hands}


def smplx_model_file(folder: str | Path) -> Path:
    """The SMPL-X model file in ``folder`` (or its ``smplx/`` subfolder); one sentence when there is none."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ListenerctlError(f"SMPL-X model folder {folder} does not exist.")
    for candidate in (folder / sub / name for sub in ("", "smplx") for name in SMPLX_MODEL_FILES):
        if candidate.is_file():
            return candidate
    found = sorted(p.name for p in folder.iterdir())[:5]
    raise ListenerctlError(f"SMPL-X model folder {folder} lacks {' or '.join(SMPLX_MODEL_FILES)} (it holds "
                           f"{', '.join(found) or 'nothing'}); download the model from smpl-x.is.tue.mpg.de.")


def require_smplx(folder: str | Path) -> Path:
    """The SMPL-X model file in ``folder`` once the `smplx` package is known to be installed; one sentence
    when either is missing (checked before any work is done)."""
    from importlib.util import find_spec

    model_file = smplx_model_file(folder)
    if find_spec("smplx") is None:
        raise ListenerctlError("rendering SMPL-X bodies needs the `smplx` package (pip install smplx).")
    return model_file


class SmplxRenderer(_Scene):
    """Render beat141 poses as an SMPL-X body mesh (same camera and shading as the capsules).

    Needs the `smplx` package and the user's SMPL-X model file (`smplx_model_file`). The face weights
    drive only the jaw (jawOpen); SMPL-X's own expression space is not ARKit's.
    """

    def __init__(self, folder: str | Path, size: int = 512, antialias: int | None = None, device: str = "cpu"):
        model_file = require_smplx(folder)
        import smplx

        from renderers.normals import VertexNormals

        self._device = device
        self._model = smplx.SMPLX(model_path=str(model_file), ext=model_file.suffix[1:], use_pca=False,
                                  flat_hand_mean=True).to(device).eval()
        faces = np.asarray(self._model.faces, np.int64)
        num_vertices = int(self._model.v_template.shape[0])
        super().__init__(size, antialias, instance_capacity=1)
        self._normals = VertexNormals(faces, num_vertices)
        self._mesh_vbo = self.ctx.buffer(reserve=num_vertices * 6 * 4, dynamic=True)
        self._mesh = self._vao(self._mesh_vbo, faces)

    def render_batch(self, beat141: np.ndarray, expression: np.ndarray | None = None) -> np.ndarray:
        """beat141 [B, 141] (+ beatface51 [B, 51] for the jaw) → RGB uint8 [B, size, size, 3]."""
        import torch

        pose = beat_to_smplx_pose(beat141)
        b = len(pose["body_pose"])
        jaw = np.zeros((b, 3))
        if expression is not None:
            jaw[:, 0] = SMPLX_JAW_OPEN_RAD * np.asarray(expression)[:, ARKIT52.index("jawOpen")]
        # every per-sample input with B rows: smplx's stored defaults for the others hold one row
        rest = {name: np.zeros((b, 3)) for name in ("global_orient", "leye_pose", "reye_pose")}
        expression_coeffs = np.zeros((b, self._model.num_expression_coeffs))
        params = {k: torch.as_tensor(v, dtype=torch.float32, device=self._device)
                  for k, v in {**pose, **rest, "jaw_pose": jaw, "expression": expression_coeffs}.items()}
        with torch.no_grad():
            out = self._model(**params, return_verts=True)
        vertices = (out.vertices - out.joints[:, :1]).cpu().numpy() * 100.0  # metres → cm, pelvis at the origin
        frames = []
        with self.ctx:
            for v, n in zip(vertices, self._normals(vertices)):
                self._begin()
                self._mesh_vbo.write(np.concatenate([v, n], axis=1).astype(np.float32).tobytes())
                self._draw_instances(self._mesh, np.eye(4)[None], np.asarray([SMPLX_COLOR]))
                frames.append(self._finish())
        return np.stack(frames)
