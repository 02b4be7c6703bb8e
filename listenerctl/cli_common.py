"""Plumbing every `listenerctl` command module shares: the consoles, the error translation, progress bars and
the ``--device`` choice. `cli` and `cli_study` import it; it imports neither."""

from __future__ import annotations

import os
from enum import Enum
from functools import wraps

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from listenerctl.errors import ListenerctlError

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


def resolve_device(device: Device) -> str:
    """'auto' → 'cuda' when a CUDA GPU is usable, else 'cpu'; 'cuda' without one is an error."""
    if device is Device.cpu:
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if device is Device.cuda:
        raise ListenerctlError("--device cuda was asked for but no CUDA GPU is available; use --device cpu.")
    return "cpu"


def friendly_errors(command):
    """Turn `ListenerctlError` into one sentence on stderr and exit code 2; Ctrl-C into exit code 130."""

    @wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except ListenerctlError as exc:
            err.print(f"[bold red]error:[/] {escape(str(exc))}")
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err.print("interrupted; unfinished outputs were removed.")
            raise typer.Exit(130) from None
        except typer.Exit:
            raise
        except Exception as exc:  # a bug, not bad input: one line, the traceback on request
            if os.environ.get("LISTENERCTL_DEBUG"):
                raise
            err.print(f"[bold red]internal error:[/] {type(exc).__name__}: {escape(str(exc))} "
                      "(set LISTENERCTL_DEBUG=1 for the traceback and please report it)")
            raise typer.Exit(3) from None

    return wrapper


def progress_bars() -> Progress:
    """Transient progress bars on stderr (hidden when stderr is not a terminal)."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err, transient=True, disable=not err.is_terminal)
