"""Who may use the studio: this machine only, unless the command line says who else (no heavy imports:
``syncos ui`` checks its arguments before Gradio loads)."""

from __future__ import annotations

from syncos.errors import UserError

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def parse_auth(text: str) -> tuple[str, str]:
    """``USER:PASS`` -> (user, password); the password may itself hold colons."""
    user, sep, password = text.partition(":")
    if not (sep and user and password):
        raise UserError(f"--auth: expected USER:PASS with both parts non-empty, got {text!r}")
    return user, password


def check_exposure(host: str, auth: tuple[str, str] | None, no_auth: bool) -> None:
    """Beyond this machine the studio runs anything for anyone who reaches the port: say who may."""
    if auth is not None and no_auth:
        raise UserError("--auth and --no-auth contradict each other; give one")
    if host not in LOCAL_HOSTS and auth is None and not no_auth:
        raise UserError(
            f"--host {host}: anyone who can reach the port could load any local folder as a model and fill "
            "the disk; add --auth USER:PASS, or --no-auth on a network you trust"
        )


__all__ = ["LOCAL_HOSTS", "check_exposure", "parse_auth"]
