"""Joining a running Ray cluster (`batch --engine ray --address`): its token authentication, its errors as one sentence.

Ray (2.52+) clusters started with ``RAY_AUTH_MODE=token`` accept only clients holding the cluster's token.
Ray itself looks for a token only when it finds a local cluster on its own (``address="auto"``); for an
explicit address the token must be switched on by the client, which `connect` does when Ray's own sources
hold one: ``RAY_AUTH_TOKEN``, the file named by ``RAY_AUTH_TOKEN_PATH``, or ``~/.ray/auth_token`` (where
``ray get-auth-token --generate`` writes it). A token sent to a cluster without authentication is ignored.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from listenerctl.errors import ListenerctlError

AUTH_MODE_ENV = "RAY_AUTH_MODE"
TOKEN_ENV = "RAY_AUTH_TOKEN"
TOKEN_PATH_ENV = "RAY_AUTH_TOKEN_PATH"
DEFAULT_TOKEN_FILE = Path("~/.ray/auth_token")
TOKEN_HELP = (f"give the cluster's token (`ray get-auth-token` on its head prints it) in {TOKEN_ENV}, in the file "
              f"named by {TOKEN_PATH_ENV}, or in {DEFAULT_TOKEN_FILE}")


def token_source() -> str | None:
    """Where Ray will read the authentication token from ('RAY_AUTH_TOKEN', a file path), or None when nowhere."""
    if os.environ.get(TOKEN_ENV):
        return TOKEN_ENV
    named = os.environ.get(TOKEN_PATH_ENV)
    if named:
        path = Path(named).expanduser()
        if not path.is_file() or not path.read_text().strip():
            raise ListenerctlError(f"{TOKEN_PATH_ENV} names {path}, which is missing or empty; {TOKEN_HELP}.")
        return str(path)
    default = DEFAULT_TOKEN_FILE.expanduser()
    return str(default) if default.is_file() and default.read_text().strip() else None


def enable_token_auth(source: str | None) -> None:
    """Switch this process to token authentication when a token exists and ``RAY_AUTH_MODE`` leaves it open."""
    if source is None or os.environ.get(AUTH_MODE_ENV):
        return
    from ray._raylet import Config

    os.environ[AUTH_MODE_ENV] = "token"
    Config.initialize("")  # Ray reads its configuration once; reread it, as Ray does when it enables tokens


def host_and_port(address: str) -> tuple[str, int] | None:
    """(host, port) of 'HOST:PORT' or 'ray://HOST:PORT' ('[::1]:6379' too); None for 'auto' or no port."""
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


@contextmanager
def _stderr_kept_aside() -> Iterator[list[str]]:
    """Send file descriptor 2 (where Ray's C++ client logs its connection retries) to a temporary file for
    the block; yields a list that holds that text once the block ends."""
    kept: list[str] = []
    with tempfile.TemporaryFile(mode="w+") as aside:
        saved = os.dup(2)
        os.dup2(aside.fileno(), 2)
        try:
            yield kept
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            aside.seek(0)
            kept.append(aside.read())


def connect(ray, address: str) -> None:
    """``ray.init(address=...)`` quietly, with the token switched on when one is found (see module doc).

    Raises ListenerctlError, one sentence, when nothing answers at ``address``, when the cluster refuses the
    token (or its absence), or when Ray cannot join for another reason.
    """
    target = host_and_port(address)
    if target:
        try:
            socket.create_connection(target, timeout=5).close()
        except OSError as exc:
            raise ListenerctlError(f"no Ray cluster answers at {address} ({exc.strerror or exc}); start one with "
                                   "`ray start --head` or correct --address.") from None
    source = token_source()
    enable_token_auth(source)
    no_token, failure = False, ""
    with _stderr_kept_aside() as ray_log:
        try:
            ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
        except ray.exceptions.AuthenticationError:  # RAY_AUTH_MODE=token given, but no token anywhere
            no_token = True
        except (ConnectionError, RuntimeError) as exc:
            failure = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if not (no_token or failure):
        return
    if failure and "InvalidAuthToken" not in ray_log[0] and "Unauthenticated" not in ray_log[0]:
        raise ListenerctlError(f"could not join the Ray cluster at {address}: {failure}.")
    if source is None:
        raise ListenerctlError(f"the Ray cluster at {address} asks for an authentication token and none was found; "
                               f"{TOKEN_HELP}.")
    raise ListenerctlError(f"the Ray cluster at {address} refused the authentication token from {source}; "
                           f"{TOKEN_HELP}.")
