"""The command-line options `generate`, `batch` and `render` share, each declared once, and the one builder of
the job options (`pipeline.GenerateOptions`) from them.

An option group is a dataclass whose fields are options: ``Annotated[type, typer.Option(...)]`` with the
default. A command names a group as one parameter (``listener: ListenerArgs``); `with_option_groups` puts the
group's fields in its place among the command's parameters and hands the command the filled-in group. So a
command taking a group has every one of its options, with the names, limits, help and defaults declared here.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, fields
from enum import Enum
from functools import wraps
from pathlib import Path
from typing import Annotated, Optional, get_type_hints

import typer

from listenerctl.cli_common import Device


class Render(str, Enum):
    mesh = "mesh"
    portrait = "portrait"
    pirender = "pirender"
    none = "none"


class MeshBackend(str, Enum):
    moderngl = "moderngl"
    pyrender = "pyrender"


TEXT_ENCODER_HELP = ("Local text encoder folder (a BERT-style model saved by transformers; nothing is downloaded): "
                     "condition on the speaker's transcript too, with a difflistener checkpoint trained on one; "
                     "an input's transcript is the .srt, .vtt or .json beside it with its stem.")


@dataclass(frozen=True)
class ListenerArgs:
    """What is generated for each input (`generate` and `batch`)."""

    samples: Annotated[int, typer.Option("-k", "--samples", min=1, max=100, help="Samples per input (K).")] = 10
    model: Annotated[Optional[str], typer.Option(help="Generator name (see `listenerctl models`; default: rules, or diffsheg with `generate --task cospeech`).")] = None
    checkpoint: Annotated[Optional[Path], typer.Option(help="Checkpoint for a learned model (default: the shipped one).")] = None
    seed: Annotated[int, typer.Option(help="Random seed (the same for every input); the same seed gives the same motion.")] = 0
    face: Annotated[str, typer.Option(help="Whose face conditions: 'auto' (whoever talks; in a dialogue the face follows the turns), 'largest', or N, the N-th person from the left (0 = leftmost).")] = "auto"
    face_at: Annotated[Optional[str], typer.Option(help="Condition on the face nearest this pixel point X,Y of the input video (overrides --face).")] = None
    text_encoder: Annotated[Optional[Path], typer.Option(help=TEXT_ENCODER_HELP)] = None


@dataclass(frozen=True)
class RenderArgs:
    """How motion becomes video, and where the work runs (`generate`, `batch` and `render`)."""

    render: Annotated[Render, typer.Option(help="How to render the motion to video: shaded 3D face, animated portrait, PIRender, or none (motion files only).")] = Render.mesh
    mesh_backend: Annotated[MeshBackend, typer.Option(help="Library drawing --render mesh: moderngl (fast), or pyrender for those who prefer it (pip install 'listenerctl\\[pyrender]').")] = MeshBackend.moderngl
    size: Annotated[int, typer.Option(min=64, max=1024, help="Video tile size in pixels (square).")] = 256
    portrait: Annotated[Optional[Path], typer.Option(help="Portrait photo to animate with --render portrait or pirender (default: the input's first frame with a face, else the shipped portrait).")] = None
    pirender_checkpoint: Annotated[Optional[Path], typer.Option(help="PIRender generator checkpoint (.pth) for --render pirender; a GPU is advised.")] = None
    side_by_side: Annotated[bool, typer.Option("--side-by-side", help="Also write side_by_side_XX.mp4 (speaker | listener).")] = False
    device: Annotated[Device, typer.Option(help="Where learned models and PIRender run.")] = Device.auto


OPTION_GROUPS = (ListenerArgs, RenderArgs)


def with_option_groups(command):
    """``command`` with each parameter annotated with an option group replaced by that group's options
    (keyword-only, in field order); it is called with the group object built from their values. An option
    declared both by the command and by a group it takes is an error (a duplicate parameter name)."""
    hints = get_type_hints(command, include_extras=True)
    params, groups = [], {}
    for param in inspect.signature(command).parameters.values():
        kind = hints[param.name]
        if kind in OPTION_GROUPS:
            groups[param.name] = kind
            group_hints = get_type_hints(kind, include_extras=True)
            params += [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default,
                                         annotation=group_hints[f.name]) for f in fields(kind)]
        else:
            params.append(param.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=kind))
    @wraps(command)
    def wrapper(**values):
        for name, kind in groups.items():
            values[name] = kind(**{f.name: values.pop(f.name) for f in fields(kind)})
        return command(**values)

    wrapper.__signature__ = inspect.Signature(params)
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    return wrapper


def generate_options(render: RenderArgs, device: str, listener: ListenerArgs | None = None,
                     transcript: Path | None = None):
    """The `pipeline.GenerateOptions` of the parsed options (``device`` resolved by the command; `render`
    passes no ``listener``: it only renders)."""
    from listenerctl.pipeline import GenerateOptions

    listener = listener or ListenerArgs()

    def text(value) -> str | None:
        return None if value is None else str(value)

    return GenerateOptions(samples=listener.samples, model=listener.model or GenerateOptions.model,
                           checkpoint=text(listener.checkpoint), seed=listener.seed, device=device,
                           render=render.render.value, mesh_backend=render.mesh_backend.value, size=render.size,
                           portrait=text(render.portrait), pirender_checkpoint=text(render.pirender_checkpoint),
                           side_by_side=render.side_by_side, face=listener.face, face_at=listener.face_at,
                           text_encoder=text(listener.text_encoder), transcript=text(transcript))
