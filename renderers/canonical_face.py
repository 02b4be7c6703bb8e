"""The MediaPipe canonical face mesh, read from the Face Landmarker bundle without MediaPipe.

The bundle (``checkpoints/face_landmarker.task``) is a zip; its member
``geometry_pipeline_metadata_landmarks.binarypb`` is a binary protobuf ``GeometryPipelineMetadata``
whose field 1 is the canonical ``Mesh3d``: field 3 ``vertex_buffer`` (floats, x y z u v per vertex,
centimetres, x right in the image, y up, z toward the camera) and field 4 ``index_buffer`` (uint32
triangle corners, counter-clockwise seen from the front). A 30-line protobuf wire-format reader
decodes it.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from listenerctl.errors import ListenerctlError
from listenerctl.paths import FACE_MODEL

GEOMETRY_MEMBER = "geometry_pipeline_metadata_landmarks.binarypb"
_METADATA_MESH_FIELD = 1
_MESH_VERTEX_FIELD, _MESH_INDEX_FIELD = 3, 4
_VARINT, _FIXED64, _LENGTH_DELIMITED, _FIXED32 = 0, 1, 2, 5


@dataclass(frozen=True)
class CanonicalFace:
    """vertices [468, 3] float32 cm; uvs [468, 2] float32 (v grows downward, texture rows);
    triangles [898, 3] int32 vertex indices, counter-clockwise seen from +z."""

    vertices: np.ndarray
    uvs: np.ndarray
    triangles: np.ndarray


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


def _read_fields(buf: bytes) -> list[tuple[int, int, int | bytes]]:
    """Top-level protobuf fields of ``buf`` as (field number, wire type, varint value or raw bytes)."""
    fields, pos = [], 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == _VARINT:
            value, pos = _read_varint(buf, pos)
        elif wire == _LENGTH_DELIMITED:
            length, pos = _read_varint(buf, pos)
            value, pos = buf[pos:pos + length], pos + length
        elif wire in (_FIXED32, _FIXED64):
            width = 4 if wire == _FIXED32 else 8
            value, pos = buf[pos:pos + width], pos + width
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        fields.append((number, wire, value))
    return fields


def _repeated_floats(fields, number: int) -> np.ndarray:
    """A repeated float field, packed (one length-delimited blob) or not (one fixed32 per value)."""
    chunks = [value for num, _, value in fields if num == number]
    return np.frombuffer(b"".join(chunks), dtype="<f4")


def _repeated_uints(fields, number: int) -> np.ndarray:
    """A repeated uint32 field, packed (varints inside one blob) or not (one varint per value)."""
    values: list[int] = []
    for num, wire, value in fields:
        if num != number:
            continue
        if wire == _VARINT:
            values.append(value)
        else:
            pos = 0
            while pos < len(value):
                item, pos = _read_varint(value, pos)
                values.append(item)
    return np.asarray(values, dtype=np.int32)


def parse_geometry_metadata(blob: bytes) -> CanonicalFace:
    """Decode a serialised ``GeometryPipelineMetadata`` into its canonical mesh."""
    meshes = [value for num, wire, value in _read_fields(blob)
              if num == _METADATA_MESH_FIELD and wire == _LENGTH_DELIMITED]
    if not meshes:
        raise ValueError("geometry metadata holds no canonical mesh")
    mesh = _read_fields(meshes[0])
    vertex_buffer = _repeated_floats(mesh, _MESH_VERTEX_FIELD)
    index_buffer = _repeated_uints(mesh, _MESH_INDEX_FIELD)
    if vertex_buffer.size % 5 or index_buffer.size % 3 or index_buffer.max() >= vertex_buffer.size // 5:
        raise ValueError("canonical mesh buffers are inconsistent")
    vertex_buffer = vertex_buffer.reshape(-1, 5).astype(np.float32)
    return CanonicalFace(vertices=vertex_buffer[:, :3].copy(), uvs=vertex_buffer[:, 3:].copy(),
                         triangles=index_buffer.reshape(-1, 3))


@lru_cache(maxsize=4)
def load_canonical_face(bundle: Path = FACE_MODEL) -> CanonicalFace:
    """The canonical face of a Face Landmarker bundle (a ``.task`` zip)."""
    bundle = Path(bundle)
    if not bundle.is_file():
        raise ListenerctlError(f"the Face Landmarker bundle was not found at {bundle}; "
                               "put Google's face_landmarker.task there.")
    try:
        with zipfile.ZipFile(bundle) as archive:
            blob = archive.read(GEOMETRY_MEMBER)
        return parse_geometry_metadata(blob)
    except (zipfile.BadZipFile, KeyError, ValueError, IndexError) as exc:
        raise ListenerctlError(f"{bundle.name} is not a Face Landmarker bundle with a canonical face "
                               f"({exc}).") from None
