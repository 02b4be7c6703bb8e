"""Pretrained encoders (HuBERT, wav2vec2, BERT) from a local folder through `transformers`, never downloaded."""

from __future__ import annotations

from pathlib import Path

from listenerctl.errors import ListenerctlError


def load_local_model(folder: Path, processor: str, what: str, device: str = "cpu", install_hint: str = ""):
    """(preprocessor, model in eval mode on ``device``) saved in ``folder`` by transformers' save_pretrained;
    ``processor`` names the transformers class that reads the preprocessor ("AutoTokenizer",
    "AutoFeatureExtractor"). One sentence, naming ``what`` is being loaded, when transformers is missing
    (with ``install_hint``) or the folder holds no such model."""
    try:
        import transformers
    except ImportError:
        raise ListenerctlError(f"the {what} needs the `transformers` package, which is not installed"
                               f"{install_hint}.") from None
    transformers.utils.logging.set_verbosity_error()          # no progress bars or notices on the terminal
    transformers.utils.logging.disable_progress_bar()
    try:
        preprocessor = getattr(transformers, processor).from_pretrained(folder, local_files_only=True)
        model = transformers.AutoModel.from_pretrained(folder, local_files_only=True).to(device).eval()
    except (OSError, ValueError) as error:
        raise ListenerctlError(f"no {what} could be loaded from {folder} "
                               f"({str(error).strip().splitlines()[0]}).") from None
    return preprocessor, model
