"""The metric protocols of `evaluate` (`react.speaker_contributions` computes each): name → what it means.

The one list of them: the `evaluate --protocol` choices and the report captions are read from here.
"""

PROTOCOLS = {
    "react2024": "REACT 2024 official metric definitions",
    "listenerctl": "listenerctl's own FRDist/FRSyn variants, not comparable with REACT 2024 results",
}
