"""Shaded mesh renderer for arkit58 faces: moderngl offscreen (EGL), one fixed camera framing the head.

Buffers, textures and programs are built once. Per frame only the posed face vertices and normals
(the rig's [468, 3] output, normals computed in numpy) and six bone matrices (head, jaw, eyes,
tongue; see `renderers.head_parts`) are uploaded. A batch of B poses is drawn into B side-by-side
viewports of one framebuffer and read back with a single transfer.

Look: a skin-textured face mask (lips, brows, lash lines painted in UV space) on a lofted skull with
hair, eyeballs with iris and pupil, teeth and tongue, neck and shoulders; back faces (mouth and socket
interiors) are dark. Two directional lights with wrapped Lambert diffuse and a Blinn-Phong highlight,
lit in roughly linear light (sRGB squared, square root at the end). Output: RGB uint8 [size, size, 3].
"""

from __future__ import annotations

import numpy as np

from renderers.face_rig import ARKIT58_DIM, FaceRig, default_rig
from renderers.face_texture import paint_face_texture
from renderers.gl import create_context, is_software, read_tiles
from renderers.head_parts import NUM_BONES, bone_matrices, build_head_parts
from renderers.normals import VertexNormals

# A centred pinhole camera 40 cm in front of the face, level with the nose, looking straight down -z
# (webcam-like perspective). MediaPipe assumes the optical axis at the image centre; from here it
# reads head pitch and yaw back within ~1.6 deg, while moving the face off-centre biases its pitch.
CAMERA_POSITION_CM = (0.0, -0.5, 40.0)
FRAME_HALF_HEIGHT_CM = 16.5  # half the height shown, at the z = 0 plane
NEAR_CM, FAR_BEYOND_FACE_CM = 5.0, 60.0  # clip planes: distance from the camera, depth behind z = 0
BACKGROUND = (0.42, 0.47, 0.52)
TEXTURE_SIZE = 512

_VERTEX_FACE = """
#version 330
uniform mat4 u_view_proj;
in vec3 in_pos;
in vec3 in_normal;
in vec2 in_uv;
out vec3 v_pos;
out vec3 v_normal;
out vec3 v_color;
out vec2 v_uv;
void main() {
    v_pos = in_pos;
    v_normal = in_normal;
    v_color = vec3(0.0);
    v_uv = in_uv;
    gl_Position = u_view_proj * vec4(in_pos, 1.0);
}
"""

_VERTEX_PARTS = """
#version 330
uniform mat4 u_view_proj;
uniform mat4 u_bones[%d];
in vec3 in_pos;
in vec3 in_normal;
in vec3 in_color;
in vec2 in_bones;
in float in_blend;
out vec3 v_pos;
out vec3 v_normal;
out vec3 v_color;
out vec2 v_uv;
void main() {
    mat4 bone = u_bones[int(in_bones.x)] * (1.0 - in_blend) + u_bones[int(in_bones.y)] * in_blend;
    vec4 world = bone * vec4(in_pos, 1.0);
    v_pos = world.xyz;
    v_normal = mat3(bone) * in_normal;
    v_color = in_color;
    v_uv = vec2(0.0);
    gl_Position = u_view_proj * world;
}
""" % NUM_BONES

_FRAGMENT = """
#version 330
uniform sampler2D u_texture;
uniform float u_textured;
uniform vec3 u_camera;
in vec3 v_pos;
in vec3 v_normal;
in vec3 v_color;
in vec2 v_uv;
out vec4 f_color;
const vec3 KEY_DIR = normalize(vec3(-0.45, 0.55, 1.0));
const vec3 FILL_DIR = normalize(vec3(0.7, 0.05, 0.7));
const vec3 INTERIOR = vec3(0.10, 0.035, 0.035);
void main() {
    vec3 albedo = mix(v_color, texture(u_texture, v_uv).rgb, u_textured);
    albedo *= albedo;
    vec3 n = normalize(v_normal);
    if (!gl_FrontFacing) {
        n = -n;
        albedo = INTERIOR;
    }
    vec3 view = normalize(u_camera - v_pos);
    float key = max((dot(n, KEY_DIR) + 0.25) / 1.25, 0.0);
    float fill = max((dot(n, FILL_DIR) + 0.25) / 1.25, 0.0);
    float sky = 0.5 + 0.5 * n.y;
    vec3 light = vec3(1.0, 0.97, 0.92) * 0.95 * key + vec3(0.85, 0.9, 1.0) * 0.35 * fill
               + mix(vec3(0.16, 0.14, 0.13), vec3(0.22, 0.23, 0.26), sky);
    float spec = pow(max(dot(n, normalize(KEY_DIR + view)), 0.0), 28.0) * 0.10;
    vec3 color = albedo * light + spec * float(gl_FrontFacing);
    f_color = vec4(sqrt(clamp(color, 0.0, 1.0)), 1.0);
}
"""


def _perspective(fov_y: float, aspect: float, near: float, far: float) -> np.ndarray:
    f = 1.0 / np.tan(fov_y / 2)
    return np.array([[f / aspect, 0, 0, 0], [0, f, 0, 0],
                     [0, 0, (far + near) / (near - far), 2 * far * near / (near - far)], [0, 0, -1, 0]], np.float32)


def check_poses(arkit: np.ndarray) -> np.ndarray:
    """arkit58 poses [B, 58] as float32; ValueError for another shape or for NaN/infinite values."""
    arkit = np.asarray(arkit, np.float32)
    if arkit.ndim != 2 or arkit.shape[1] != ARKIT58_DIM:
        raise ValueError(f"render_batch takes arkit58 poses of shape [B, {ARKIT58_DIM}], got {arkit.shape}")
    if not np.isfinite(arkit).all():
        raise ValueError("arkit58 poses contain NaN or infinite values; fill missing frames before rendering")
    return arkit


def _gl_matrices(matrices: np.ndarray) -> bytes:
    """Row-major float32 matrices [..., 4, 4] as the column-major bytes GLSL expects."""
    return np.ascontiguousarray(np.swapaxes(matrices, -1, -2), dtype=np.float32).tobytes()


class MeshRenderer:
    """Render arkit58 poses as shaded head images, RGB uint8 [size, size, 3].

    ``antialias`` is the MSAA sample count (1 turns it off); None picks 4 on a GPU and 1 on Mesa's
    CPU rasteriser, where 4x multisampling costs 3-4x the time. ``max_batch`` caps the viewports
    drawn per framebuffer read; larger batches are rendered in chunks.
    """

    def __init__(self, size: int = 256, rig: FaceRig | None = None, antialias: int | None = None,
                 max_batch: int = 16):
        self.size = int(size)
        self.rig = rig or default_rig()
        self.ctx = create_context()
        self.max_batch = max(1, min(max_batch, self.ctx.info["GL_MAX_RENDERBUFFER_SIZE"] // self.size))
        if antialias is None:
            antialias = 1 if is_software(self.ctx) else 4
        self.samples = max(1, min(antialias, self.ctx.max_samples))  # MSAA samples per pixel, 1 = off
        self._normals = VertexNormals(self.rig.skin_triangles, len(self.rig.neutral))
        self._faces_per_pose = len(self.rig.skin_triangles) * 3
        self._build_programs()
        self._build_parts()
        self._build_face(self.max_batch)
        self._build_framebuffers(self.max_batch)

    # ---- one-time set-up --------------------------------------------------------------------------
    def _build_programs(self) -> None:
        camera = np.asarray(CAMERA_POSITION_CM, np.float32)
        view = np.eye(4, dtype=np.float32)
        view[:3, 3] = -camera
        fov = 2 * np.arctan(FRAME_HALF_HEIGHT_CM / camera[2])
        view_proj = _perspective(fov, 1.0, NEAR_CM, camera[2] + FAR_BEYOND_FACE_CM) @ view
        self._face_prog = self.ctx.program(vertex_shader=_VERTEX_FACE, fragment_shader=_FRAGMENT)
        self._parts_prog = self.ctx.program(vertex_shader=_VERTEX_PARTS, fragment_shader=_FRAGMENT)
        for prog, textured in ((self._face_prog, 1.0), (self._parts_prog, 0.0)):
            prog["u_view_proj"].write(_gl_matrices(view_proj))
            prog["u_camera"].value = tuple(camera)
            prog["u_textured"].value = textured
        self._texture = self.ctx.texture((TEXTURE_SIZE, TEXTURE_SIZE), 3,
                                         paint_face_texture(self.rig, TEXTURE_SIZE).tobytes())
        self._face_prog["u_texture"].value = 0

    def _build_parts(self) -> None:
        parts = build_head_parts(self.rig)
        data = np.concatenate([parts.positions, parts.normals, parts.colors, parts.bones.astype(np.float32),
                               parts.blend[:, None]], axis=1).astype(np.float32)
        self._parts_vbo = self.ctx.buffer(data.tobytes())
        self._parts_ibo = self.ctx.buffer(parts.triangles.astype(np.int32).tobytes())
        self._parts_vao = self.ctx.vertex_array(
            self._parts_prog, [(self._parts_vbo, "3f 3f 3f 2f 1f", "in_pos", "in_normal", "in_color", "in_bones",
                                "in_blend")], self._parts_ibo)

    def _build_face(self, capacity: int) -> None:
        n = len(self.rig.neutral)
        self._face_vbo = self.ctx.buffer(reserve=capacity * n * 6 * 4, dynamic=True)
        self._uv_vbo = self.ctx.buffer(np.tile(self.rig.uvs.astype(np.float32), (capacity, 1)).tobytes())
        indices = self.rig.skin_triangles.astype(np.int32).ravel()
        self._face_ibo = self.ctx.buffer(np.concatenate([indices + b * n for b in range(capacity)]).tobytes())
        self._face_vao = self.ctx.vertex_array(
            self._face_prog, [(self._face_vbo, "3f 3f", "in_pos", "in_normal"), (self._uv_vbo, "2f", "in_uv")],
            self._face_ibo)

    def _build_framebuffers(self, capacity: int) -> None:
        width = capacity * self.size
        self._fbo = self.ctx.framebuffer(self.ctx.renderbuffer((width, self.size)),
                                         self.ctx.depth_renderbuffer((width, self.size)))
        self._msaa_fbo = None
        if self.samples > 1:
            self._msaa_fbo = self.ctx.framebuffer(
                self.ctx.renderbuffer((width, self.size), samples=self.samples),
                self.ctx.depth_renderbuffer((width, self.size), samples=self.samples))

    # ---- rendering --------------------------------------------------------------------------------
    def render(self, arkit58: np.ndarray) -> np.ndarray:
        """One pose [58] -> RGB uint8 [size, size, 3]."""
        arkit58 = np.asarray(arkit58, np.float32)
        if arkit58.shape != (ARKIT58_DIM,):
            raise ValueError(f"render takes one arkit58 pose of shape ({ARKIT58_DIM},), got {arkit58.shape}")
        return self.render_batch(arkit58[None])[0]

    def render_batch(self, arkit: np.ndarray) -> np.ndarray:
        """Poses [B, 58] -> RGB uint8 [B, size, size, 3]."""
        arkit = check_poses(arkit)
        with self.ctx:  # make this renderer's context current: several may live in one thread
            chunks = [self._render_chunk(arkit[i:i + self.max_batch]) for i in range(0, len(arkit), self.max_batch)]
        return np.concatenate(chunks) if chunks else np.zeros((0, self.size, self.size, 3), np.uint8)

    def _render_chunk(self, arkit: np.ndarray) -> np.ndarray:
        b, s = len(arkit), self.size
        vertices = self.rig.deform(arkit)
        face = np.concatenate([vertices, self._normals(vertices)], axis=-1)
        self._face_vbo.write(face.astype(np.float32).tobytes())
        bones = _gl_matrices(bone_matrices(self.rig, arkit))
        bone_bytes = len(bones) // b
        target = self._msaa_fbo or self._fbo
        target.use()
        self.ctx.viewport = (0, 0, b * s, s)
        target.clear(*BACKGROUND, 1.0, viewport=(0, 0, b * s, s))
        self.ctx.enable(self.ctx.DEPTH_TEST)
        self._texture.use(location=0)
        for i in range(b):
            self.ctx.viewport = (i * s, 0, s, s)
            self._parts_prog["u_bones"].write(bones[i * bone_bytes:(i + 1) * bone_bytes])
            self._face_vao.render(vertices=self._faces_per_pose, first=i * self._faces_per_pose)
            self._parts_vao.render()
        if self._msaa_fbo is not None:
            self.ctx.copy_framebuffer(self._fbo, self._msaa_fbo)
        return read_tiles(self._fbo, b, s)

    def release(self) -> None:
        """Free the GL context and everything on it."""
        self.ctx.release()

    def __enter__(self) -> "MeshRenderer":
        return self

    def __exit__(self, *exc) -> None:
        self.release()
