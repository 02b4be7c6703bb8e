"""pyrender backend of the mesh renderer (``--mesh-backend pyrender``): `renderers.mesh.MeshRenderer`'s rig,
head parts, camera and look, drawn by pyrender's own metallic-roughness shader, offscreen through EGL.

The scene is built once: the textured face mask, the head parts (`renderers.head_parts`) in one node
per bone that moves them rigidly plus one node of triangles blended between two bones (the skull where
the jaw pulls it), a camera and two directional lights. Per pose the rigid nodes get their bone
matrices (`Scene.set_pose`), and the face mask and the blended triangles, posed in numpy, are written
into the vertex buffers pyrender allocated for them; nothing is rebuilt. pyrender has no public call
for that write, so `_VertexStream` uses its primitives' buffer layout (``Primitive._buffers[0]``:
float32 position 3, normal 3, then uv 2 or colour 4, interleaved) while the renderer's context is current.

MeshRenderer draws back faces (mouth and eye-socket interiors) dark; pyrender culls them, so every
surface carries an inward copy (reversed winding, flipped normals) in MeshRenderer's interior colour.
Lights: pyrender's BRDF has no wrapped Lambert or sky term, so a key, a fill and a constant ambient
were set to approximate MeshRenderer's (see ``KEY``). pyrender draws one pose per pass, with its fixed
4x multisampling.

NumPy 2: pyrender 0.1.45 computes ``Mesh.bounds`` with ``np.infty``, removed in NumPy 2
(mmatl/pyrender#288, fix unmerged). Only scene-bounds users reach it (the viewer, shadow maps); this
renderer casts no shadows and gives the camera a finite far plane, so it never does.
"""

from __future__ import annotations

import os

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")  # before pyrender (and with it PyOpenGL) is imported

import numpy as np

from listenerctl.errors import ListenerctlError
from renderers.face_rig import FaceRig, default_rig
from renderers.face_texture import paint_face_texture
from renderers.gl import EGL_PACKAGES
from renderers.head_parts import HeadParts, bone_matrices, build_head_parts
from renderers.mesh import (BACKGROUND, CAMERA_POSITION_CM, FAR_BEYOND_FACE_CM, FRAME_HALF_HEIGHT_CM, NEAR_CM,
                            TEXTURE_SIZE, MeshRenderer, check_poses)
from renderers.normals import VertexNormals

INSTALL = "pip install 'listenerctl[pyrender]'"
INTERIOR = (0.10, 0.035, 0.035)  # linear colour of back faces, MeshRenderer's
SRGB_GAMMA = 2.2                 # pyrender writes colour ** (1 / 2.2): vertex colours go in as colour ** 2.2
# (colour, intensity, direction toward the light): MeshRenderer's key and fill directions; intensities
# fitted so pyrender's diffuse (albedo * 0.96 (1 - F) / pi * n.l * intensity) plus AMBIENT lands near
# MeshRenderer's wrapped Lambert plus sky light on the front of the face.
KEY = ((1.0, 0.97, 0.92), 2.7, (-0.45, 0.55, 1.0))
FILL = ((0.85, 0.9, 1.0), 0.95, (0.7, 0.05, 0.7))
AMBIENT = (0.42, 0.41, 0.42)
ROUGHNESS = 0.5  # with the lights above, fitted by mean pixel difference to MeshRenderer over random poses


def load_pyrender():
    """The pyrender module; `ListenerctlError` naming the install command when it (or a dependency) is missing."""
    try:
        import pyrender
    except ModuleNotFoundError as exc:
        raise ListenerctlError(f"--mesh-backend pyrender needs pyrender, which is not installed (missing module "
                               f"{exc.name}); install it with {INSTALL}.") from None
    return pyrender


def _facing(direction) -> np.ndarray:
    """A 4x4 pose whose +z axis points along ``direction`` (pyrender's lights shine down their -z)."""
    z = np.asarray(direction, np.float64) / np.linalg.norm(direction)
    x = np.cross([0.0, 1.0, 0.0], z)
    x /= np.linalg.norm(x)
    pose = np.eye(4)
    pose[:3, :3] = np.stack([x, np.cross(z, x), z], axis=1)
    return pose


def _with_inside(positions: np.ndarray, normals: np.ndarray, triangles: np.ndarray) -> tuple:
    """Positions, normals [2N, 3] and triangles [2M, 3] of a surface plus its inward copy (second half)."""
    n = len(positions)
    return (np.concatenate([positions, positions]), np.concatenate([normals, -normals]),
            np.concatenate([triangles, triangles[:, ::-1] + n]))


def _rigid_groups(parts: HeadParts) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """Part triangles grouped by the one bone that moves all three corners, {bone: [M, 3]}, and the
    triangles with a corner blended between two bones [M', 3]."""
    bone = np.where(parts.blend <= 0.0, parts.bones[:, 0], np.where(parts.blend >= 1.0, parts.bones[:, 1], -1))
    bone = np.where(parts.bones[:, 0] == parts.bones[:, 1], parts.bones[:, 0], bone)
    corners = bone[parts.triangles]
    rigid = (corners == corners[:, :1]).all(axis=1) & (corners[:, 0] >= 0)
    groups = {int(b): parts.triangles[rigid & (corners[:, 0] == b)] for b in np.unique(corners[rigid, 0])}
    return groups, parts.triangles[~rigid]


def _compact(triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the vertex indices used [V], the triangles renumbered over them [M, 3])."""
    used, local = np.unique(triangles, return_inverse=True)
    return used, local.reshape(triangles.shape)


class _VertexStream:
    """A pyrender primitive whose positions and normals are rewritten every pose, in place."""

    def __init__(self, primitive, gl):
        self.primitive, self._gl = primitive, gl
        extra = primitive.texcoord_0 if primitive.texcoord_0 is not None else primitive.color_0
        self.data = np.ascontiguousarray(np.concatenate([primitive.positions, primitive.normals, extra], axis=1),
                                         np.float32)

    def write(self, positions: np.ndarray, normals: np.ndarray) -> None:
        """Upload positions and normals [N, 3]; the renderer's context must be current."""
        self.data[:, :3], self.data[:, 3:6] = positions, normals
        self._gl.glBindBuffer(self._gl.GL_ARRAY_BUFFER, self.primitive._buffers[0])
        self._gl.glBufferSubData(self._gl.GL_ARRAY_BUFFER, 0, self.data.nbytes, self.data)


class PyrenderMeshRenderer:
    """Render arkit58 poses as shaded head images, RGB uint8 [size, size, 3], with pyrender.

    Same interface as `MeshRenderer` (``render``, ``render_batch``, ``release``, context manager,
    ``samples``); ``gl_renderer`` names the OpenGL renderer pyrender got (llvmpipe on a CPU).
    """

    render = MeshRenderer.render  # one pose [58] -> [size, size, 3], through render_batch
    samples = 4                   # MSAA samples per pixel: pyrender's main framebuffer has this many, fixed

    def __init__(self, size: int = 256, rig: FaceRig | None = None):
        self._pyrender = pyrender = load_pyrender()
        from OpenGL import GL

        self.size = int(size)
        self.rig = rig or default_rig()
        self._normals = VertexNormals(self.rig.skin_triangles, len(self.rig.neutral))
        self._scene = pyrender.Scene(bg_color=(*BACKGROUND, 1.0), ambient_light=AMBIENT)
        self._add_camera_and_lights()
        face = self._add_face()
        blended = self._add_parts()
        try:
            self._renderer = pyrender.OffscreenRenderer(self.size, self.size)
            self._renderer.render(self._scene)  # puts every primitive's buffers on the GPU
        except Exception as exc:  # PyOpenGL raises GLError / plain errors for every EGL failure
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ListenerctlError(f"the pyrender mesh backend could not render offscreen through EGL ({reason}); "
                                   f"install Mesa's EGL (Debian/Ubuntu: apt-get install {EGL_PACKAGES}).") from None
        self._face_streams = [_VertexStream(p, GL) for p in face.primitives]
        self._blended_stream = _VertexStream(blended.primitives[0], GL)
        self._renderer._platform.make_current()
        self.gl_renderer = GL.glGetString(GL.GL_RENDERER).decode()

    # ---- one-time set-up --------------------------------------------------------------------------
    def _add_camera_and_lights(self) -> None:
        pyrender, camera = self._pyrender, np.asarray(CAMERA_POSITION_CM, np.float64)
        pose = np.eye(4)
        pose[:3, 3] = camera
        fov = 2 * np.arctan(FRAME_HALF_HEIGHT_CM / camera[2])
        self._scene.add(pyrender.PerspectiveCamera(yfov=fov, znear=NEAR_CM, zfar=camera[2] + FAR_BEYOND_FACE_CM,
                                                   aspectRatio=1.0), pose=pose)
        for color, intensity, direction in (KEY, FILL):
            self._scene.add(pyrender.DirectionalLight(color=color, intensity=intensity), pose=_facing(direction))

    def _material(self, texture: np.ndarray | None = None):
        pyrender = self._pyrender
        if texture is not None:
            linear = pyrender.constants.GLTF.LINEAR  # like MeshRenderer's texture: bilinear, no mipmaps
            # pyrender flips rows on upload (glTF's v runs down); the rig's v runs up, as in MeshRenderer
            texture = pyrender.Texture(source=np.ascontiguousarray(texture[::-1]), source_channels="RGB",
                                       sampler=pyrender.Sampler(magFilter=linear, minFilter=linear))
        return pyrender.MetallicRoughnessMaterial(baseColorFactor=(1.0, 1.0, 1.0, 1.0), metallicFactor=0.0,
                                                  roughnessFactor=ROUGHNESS, baseColorTexture=texture)

    def _add_face(self):
        """The face mask: a textured skin primitive and its dark inward copy, in world coordinates."""
        pyrender, rig = self._pyrender, self.rig
        vertices = rig.neutral
        normals = self._normals(vertices[None])[0]
        inside = rig.skin_triangles[:, ::-1]
        skin = pyrender.Primitive(positions=vertices, normals=normals, texcoord_0=rig.uvs.astype(np.float32),
                                  indices=rig.skin_triangles,
                                  material=self._material(paint_face_texture(rig, TEXTURE_SIZE)))
        back = pyrender.Primitive(positions=vertices, normals=-normals, indices=inside, material=self._material(),
                                  color_0=np.broadcast_to((*INTERIOR, 1.0), (len(vertices), 4)))
        mesh = pyrender.Mesh([skin, back])
        self._scene.add(mesh)
        return mesh

    def _part_primitive(self, parts: HeadParts, used: np.ndarray, triangles: np.ndarray):
        """Vertices ``used`` of ``parts`` with ``triangles`` over them, and their inward copy, as one primitive."""
        positions, normals, triangles = _with_inside(parts.positions[used], parts.normals[used], triangles)
        colors = np.concatenate([parts.colors[used] ** SRGB_GAMMA, np.broadcast_to(INTERIOR, (len(used), 3))])
        return self._pyrender.Primitive(positions=positions, normals=normals, indices=triangles,
                                        color_0=np.concatenate([colors, np.ones((len(colors), 1))], axis=1),
                                        material=self._material())

    def _add_parts(self):
        """One node per bone for rigidly moved parts (head coordinates, posed by the bone matrix) and one
        node of blended triangles (posed in numpy); returns the blended mesh."""
        parts = build_head_parts(self.rig)
        groups, blended = _rigid_groups(parts)
        self._bone_nodes = {}
        for bone, triangles in groups.items():
            used, local = _compact(triangles)
            mesh = self._pyrender.Mesh([self._part_primitive(parts, used, local)])
            self._bone_nodes[bone] = self._scene.add(mesh)
        used, local = _compact(blended)
        self._blended_vertices = (parts.positions[used], parts.normals[used], parts.bones[used], parts.blend[used])
        mesh = self._pyrender.Mesh([self._part_primitive(parts, used, local)])
        self._scene.add(mesh)
        return mesh

    # ---- rendering --------------------------------------------------------------------------------
    def _blended_pose(self, bones: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions and normals [V, 3] of the blended triangles' vertices for bone matrices [6, 4, 4],
        blended as MeshRenderer's vertex shader does."""
        positions, normals, index, weight = self._blended_vertices
        matrices = bones[index[:, 0]] * (1.0 - weight)[:, None, None] + bones[index[:, 1]] * weight[:, None, None]
        rotation = matrices[:, :3, :3]
        return (np.einsum("vij,vj->vi", rotation, positions) + matrices[:, :3, 3],
                np.einsum("vij,vj->vi", rotation, normals))

    def render_batch(self, arkit: np.ndarray) -> np.ndarray:
        """Poses [B, 58] -> RGB uint8 [B, size, size, 3], one pyrender pass per pose."""
        arkit = check_poses(arkit)
        out = np.empty((len(arkit), self.size, self.size, 3), np.uint8)
        if not len(arkit):
            return out
        vertices = self.rig.deform(arkit)
        normals = self._normals(vertices)
        bones = bone_matrices(self.rig, arkit)
        for i in range(len(arkit)):
            for bone, node in self._bone_nodes.items():
                self._scene.set_pose(node, bones[i, bone])
            self._renderer._platform.make_current()
            skin, back = self._face_streams
            skin.write(vertices[i], normals[i])
            back.write(vertices[i], -normals[i])
            positions, part_normals = self._blended_pose(bones[i])
            self._blended_stream.write(np.concatenate([positions, positions]),
                                       np.concatenate([part_normals, -part_normals]))
            out[i], _ = self._renderer.render(self._scene)
        return out

    def release(self) -> None:
        """Free this renderer's GL objects and its EGL context.

        Not `OffscreenRenderer.delete` under EGL: pyrender's EGL platform then also calls eglTerminate on
        the display, which EGL shares between all contexts on a device, so every other pyrender renderer
        in the process died with EGL_BAD_DISPLAY (mmatl/pyrender#223).
        """
        platform = self._renderer._platform
        if not hasattr(platform, "_egl_context"):  # PYOPENGL_PLATFORM set to another platform by the user
            self._renderer.delete()
            return
        from OpenGL import EGL

        platform.make_current()
        self._renderer._renderer.delete()
        EGL.eglMakeCurrent(platform._egl_display, EGL.EGL_NO_SURFACE, EGL.EGL_NO_SURFACE, EGL.EGL_NO_CONTEXT)
        EGL.eglDestroyContext(platform._egl_display, platform._egl_context)

    def __enter__(self) -> "PyrenderMeshRenderer":
        return self

    def __exit__(self, *exc) -> None:
        self.release()
