"""The metric protocols of `evaluate` (`react.speaker_contributions` computes each): name → what it means.

The one list of them: the `evaluate --protocol` choices, the report captions and the checks read it here.
"""

from listenerctl.errors import ListenerctlError

PROTOCOLS = {
    "react2024": "REACT 2024 official metric definitions",
    "listenerctl": "listenerctl's own FRDist/FRSyn variants, not comparable with REACT 2024 results",
}


def check_protocol(protocol: str) -> None:
    """One sentence when ``protocol`` is not one of `PROTOCOLS`."""
    if protocol not in PROTOCOLS:
        raise ListenerctlError(f"unknown metric protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}.")
