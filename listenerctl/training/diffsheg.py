"""Training of DiffSHEG (`models.diffsheg`) on BEAT: the BEAT folder (bvh + wav [+ face json]) and
talking-face videos as training / held-out clips, normalisation statistics, seeded crop batches with
silence augmentation, the Min-SNR-weighted noise-prediction loss, the `TrainPlan`, and the held-out
evaluation (FGD, beat alignment, diversity and motion energy on speech and silence against baselines).

Every BEAT clip's last ``heldout_s`` seconds are held out; a style id per BEAT speaker (`data.beat.beat_speaker`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from listenerctl.data.beat import (beat_speaker, load_beat_bvh, read_beat_face_json, skeleton_from_card,
                                   skeleton_to_card)
from listenerctl.errors import ListenerctlError
from listenerctl.features.audio import SAMPLE_RATE
from listenerctl.features.audio_encoder import PretrainedAudioEncoder, parse_audio_encoder
from listenerctl.features.face import extract_face
from listenerctl.media import load_audio
from listenerctl.metrics.gesture import (beat_alignment_score, diversity, gesture_fd, gesture_speed,
                                         motion_energy)
from listenerctl.models.diffsheg import (ANY_STYLE, EXPRESSION_DIM, EXPRESSION_SPEC, FPS, GESTURE_DIM, GESTURE_SPEC,
                                         NAME, VIDEO_STYLE_PREFIX, DiffSheg, DiffShegConfig, UniEG, audio_features)
from listenerctl.motion import fit_length
from listenerctl.training.loop import TrainPlan

GESTURE_STD_FLOOR = 1.0  # degrees: BEAT's near-constant channels (std ~1e-6) are not blown up
GESTURE_STD_CAP = 180.0   # degrees: BEAT's forearm X/Z stds (~2000, from angles wandering over turns) are capped
EXPRESSION_STD_FLOOR = 0.01


@dataclass(frozen=True)
class TrainOptions:
    """Training-only settings (recorded in the card, not needed to rebuild the model).

    ``heldout_s`` seconds at the end of every BVH clip are kept for evaluation; ``face_videos`` are
    talking-face videos (paths relative to the data folder, or absolute) whose face front-end output
    (features.face, arkit58 → 51 BEAT shapes) and audio train the expression branch when the data has no
    BEAT face JSON; the default is the shared sample's talking-face video beside ``beat/``.
    """

    batch_size: int = 16
    lr: float = 4e-4
    lr_decay_steps: int = 1500  # > 0: cosine decay of the learning rate to a tenth over this many steps
    weight_decay: float = 0.01
    heldout_s: float = 10.0
    style_dropout: float = 0.3
    short_batch_share: float = 0.2  # batches cropped shorter than a window, so short inputs are seen
    silence_share: float = 0.25  # crops whose audio becomes digital silence and whose motion holds its first frame
    velocity_weight: float = 4.0  # weight of the x̂0 velocity term of `diffusion_loss`
    face_videos: tuple[str, ...] = ("../video/talking_face_8s.mp4",)
    eval_samples: int = 10


@dataclass
class TrainingClip:
    """One recording at 15 fps: audio features [T, A]; expression [T, 51] / gesture [T, 141] or None; style id;
    speech: its 16 kHz waveform [≈ T / 15 · 16000]."""

    name: str
    audio: np.ndarray
    expression: np.ndarray | None
    gesture: np.ndarray | None
    style: int
    speech: np.ndarray


def load_beat_folder(data: Path, options: TrainOptions, encoder: PretrainedAudioEncoder | None):
    """Training and held-out clips from ``data`` (BEAT ``*.bvh`` + same-stem ``.wav`` [+ ``.json`` face])
    and ``options.face_videos``. Returns (train clips, held-out clips, style names, skeleton, descriptions)."""
    data = Path(data)
    bvhs = sorted(data.glob("*.bvh"))
    if not bvhs:
        raise ListenerctlError(f"no BEAT .bvh files in {data}; diffsheg trains on BEAT bvh + wav pairs.")
    styles = [ANY_STYLE]
    train, heldout, described = [], [], []
    skeleton = None
    for bvh in bvhs:
        wav = bvh.with_suffix(".wav")
        if not wav.is_file():
            raise ListenerctlError(f"{bvh.name} has no matching {wav.name} in {data}.")
        gesture_motion, clip_skeleton = load_beat_bvh(bvh, FPS)
        skeleton = skeleton or clip_skeleton
        gesture = gesture_motion.data[0]
        speech = load_audio(wav)
        audio = audio_features(speech, encoder, len(gesture))
        face_json = bvh.with_suffix(".json")
        expression = None
        if face_json.is_file():
            expression = fit_length(read_beat_face_json(face_json, FPS).data[0], len(gesture))
        speaker = beat_speaker(bvh.stem)
        styles += [speaker] if speaker not in styles else []
        cut = len(gesture) - int(round(options.heldout_s * FPS))
        if cut < len(gesture) // 2:
            raise ListenerctlError(f"{bvh.name} lasts {len(gesture) / FPS:.1f} s, too short to hold out "
                                   f"{options.heldout_s} s for evaluation.")
        part = lambda a, s: None if a is None else a[s]
        sample_cut = int(round(cut / FPS * SAMPLE_RATE))
        train.append(TrainingClip(bvh.stem, audio[:cut], part(expression, slice(None, cut)), gesture[:cut],
                                  styles.index(speaker), speech[:sample_cut]))
        heldout.append(TrainingClip(bvh.stem, audio[cut:], part(expression, slice(cut, None)), gesture[cut:],
                                    styles.index(speaker), speech[sample_cut:]))
        described.append(f"{bvh.name} + {wav.name}" + (f" + {face_json.name}" if expression is not None else "")
                         + f": {cut / FPS:.1f} s train, last {(len(gesture) - cut) / FPS:.1f} s held out")
    has_face_json = any(c.expression is not None for c in train)
    for video in () if has_face_json else options.face_videos:
        train.append(_face_video_clip(data / video, encoder, styles))
        described.append(f"{Path(video).name}: face front-end (features.face, MediaPipe) weights and the video's "
                         f"own audio, {len(train[-1].audio) / FPS:.1f} s, expression branch only")
    return train, heldout, tuple(styles), skeleton, described


def _face_video_clip(video: Path, encoder: PretrainedAudioEncoder | None, styles: list[str]) -> TrainingClip:
    """Expression-only training clip from a talking-face video: 51 BEAT weights per frame + its audio."""
    if not video.is_file():
        raise ListenerctlError(f"face video {video} does not exist; the data has no BEAT face JSON, so the "
                               f"expression branch needs a talking-face video (TrainOptions.face_videos).")
    face = extract_face(video, fps=FPS)
    expression = face.arkit[:, :EXPRESSION_DIM].astype(np.float32)
    speech = load_audio(video)
    audio = audio_features(speech, encoder, len(expression))
    name = f"{VIDEO_STYLE_PREFIX}{video.stem}"
    styles.append(name)
    return TrainingClip(name, audio, expression, None, len(styles) - 1, speech)


def expression_source(train: list[TrainingClip]) -> str:
    """One plain sentence on where the expression branch's training targets came from."""
    paired = [c.name for c in train if c.expression is not None and c.gesture is not None]
    videos = [c.name.removeprefix(VIDEO_STYLE_PREFIX) for c in train if c.expression is not None and c.gesture is None]
    if paired and not videos:
        return "BEAT face JSON paired with the same recordings' gestures and audio."
    if not videos:
        return "no face data: the expression branch is untrained."
    return (f"the data has {'BEAT face JSON for ' + ', '.join(paired) if paired else 'no BEAT face JSON'}; the "
            f"expression branch was trained on the face front-end output (listenerctl.features.face, MediaPipe "
            f"blendshapes, the 51 BEAT shapes) of {', '.join(videos)} paired with that video's own audio — a "
            f"different speaker from the gestures. On clips without face data only the gesture loss counts, "
            f"and the gesture branch receives the expression branch's own denoised estimate.")


def normalisation_stats(data: Path, train: list[TrainingClip]) -> dict[str, np.ndarray]:
    """Mean/std per channel: BEAT's shipped stats (``data/stats/{bvh,json}_{mean,std}.npy``) when present,
    else the training clips'; audio mean, std and range always from the training clips. Stds are floored (and gesture stds
    capped at half a turn)."""
    def pooled(attr):
        rows = [getattr(c, attr) for c in train if getattr(c, attr) is not None]
        stacked = np.concatenate(rows) if rows else None
        return (stacked.mean(0), stacked.std(0)) if stacked is not None else None

    stats = {}
    for name, file, dim, floor in (("gesture", "bvh", GESTURE_DIM, GESTURE_STD_FLOOR),
                                   ("expression", "json", EXPRESSION_DIM, EXPRESSION_STD_FLOOR)):
        mean_file, std_file = data / "stats" / f"{file}_mean.npy", data / "stats" / f"{file}_std.npy"
        if mean_file.is_file() and std_file.is_file():
            mean, std = np.load(mean_file), np.load(std_file)
        else:
            mean, std = pooled(name) or (np.zeros(dim), np.ones(dim))
        if mean.shape != (dim,) or std.shape != (dim,):
            raise ListenerctlError(f"{name} statistics in {data / 'stats'} need shape ({dim},).")
        cap = GESTURE_STD_CAP if name == "gesture" else np.inf
        stats[f"{name}_mean"], stats[f"{name}_std"] = mean, np.clip(std, floor, cap)
    audio_mean, audio_std = pooled("audio")
    stats["audio_mean"], stats["audio_std"] = audio_mean, np.maximum(audio_std, 1e-3)
    audio = np.concatenate([c.audio for c in train])
    stats["audio_low"], stats["audio_high"] = audio.min(0), audio.max(0)
    return {k: np.asarray(v, np.float32) for k, v in stats.items()}


def training_batches(clips: list[TrainingClip], options: TrainOptions, window: int, device: str,
                     seed: int, silence: np.ndarray) -> Iterator[dict]:
    """Endless seeded batches of random crops: audio [B, L, A], expression [B, L, 51], gesture [B, L, 141]
    (zeros where absent), has_expression / has_gesture [B] bool, style [B] long. Half of the items come
    from clips with gestures and half from clips with expressions when both kinds exist; L = ``window``
    except for a share of shorter batches. Styles drop to 0 ('any') with probability ``style_dropout``.

    Silence augmentation: with probability ``silence_share`` an item's audio is replaced by the features
    of digital silence (``silence`` [A]) and its motion by its first frame held still — a minute of speech
    has too few pauses to teach that a silent speaker holds still.
    """
    rng = np.random.default_rng(seed)
    pools = [p for p in ([c for c in clips if c.gesture is not None], [c for c in clips if c.expression is not None]) if p]
    shortest = min(len(c.audio) for c in clips)
    while True:
        length = min(window, shortest)
        if rng.random() < options.short_batch_share:
            length = int(rng.integers(1, length + 1))
        batch = {k: [] for k in ("audio", "expression", "gesture", "has_expression", "has_gesture", "style")}
        for i in range(options.batch_size):
            pool = pools[i % len(pools)]
            clip = pool[rng.integers(len(pool))]
            start = int(rng.integers(0, len(clip.audio) - length + 1))
            crop = slice(start, start + length)
            silent = rng.random() < options.silence_share
            if silent:
                crop = np.full(length, start)
            batch["audio"].append(np.broadcast_to(silence, (length, len(silence))) if silent else clip.audio[crop])
            for part, dim in (("expression", EXPRESSION_DIM), ("gesture", GESTURE_DIM)):
                values = getattr(clip, part)
                batch[part].append(np.zeros((length, dim), np.float32) if values is None else values[crop])
                batch[f"has_{part}"].append(values is not None)
            batch["style"].append(0 if rng.random() < options.style_dropout else clip.style)
        yield {k: torch.as_tensor(np.asarray(v), device=device).float() if k in ("audio", "expression", "gesture")
               else torch.as_tensor(np.asarray(v), device=device) for k, v in batch.items()}


def diffusion_loss(model: UniEG, batch: dict, velocity_weight: float = 0.0,
                   generator: torch.Generator | None = None) -> dict:
    """Noise-prediction MSE of each branch over the items that have that branch's ground truth, each
    item weighted by min(SNR_t, γ) / SNR_t (Min-SNR-γ, Hang et al. 2023; SNR_t = ᾱ_t / (1 − ᾱ_t),
    γ = ``config.min_snr``), which keeps the nearly clean steps from dominating. Since
    ‖ε̂ − ε‖² = SNR_t ‖x̂0 − x0‖², that is min(SNR_t, γ) ‖x̂0 − x0‖²; the velocity term adds
    ``velocity_weight`` · min(SNR_t, γ) ‖Δx̂0 − Δx0‖² (Δ: frame-to-frame change), against jitter."""
    model.train()
    x0 = model.normalise(batch["expression"], batch["gesture"])
    x_t, t, noise = model.schedule.training_example(x0, generator)
    x0_hat = model.denoise(x_t, t, model.encode_audio(batch["audio"]), batch["style"].long())
    ab = model.alphas_cumprod[t]
    snr = ab / (1 - ab)
    weight = snr.clamp(max=model.config.min_snr) / snr
    per_item = (model.noise_from_x0(x_t, t, x0_hat) - noise).square()
    velocity = (x0_hat.diff(dim=1) - x0.diff(dim=1)).square() if x0.shape[1] > 1 else None
    terms = {}
    for part, channels in (("expression", slice(None, EXPRESSION_DIM)), ("gesture", slice(EXPRESSION_DIM, None))):
        has = batch[f"has_{part}"].float()
        count = has.sum().clamp_min(1)
        terms[f"loss_{part}"] = (per_item[..., channels].mean(dim=(1, 2)) * has * weight).sum() / count
        if velocity is not None and velocity_weight > 0:
            terms[f"velocity_{part}"] = (velocity[..., channels].mean(dim=(1, 2)) * has
                                         * snr.clamp(max=model.config.min_snr)).sum() / count
    loss = terms["loss_expression"] + terms["loss_gesture"]
    loss = loss + velocity_weight * sum(v for k, v in terms.items() if k.startswith("velocity_"))
    return {"loss": loss, **terms}


def make_train_plan(data: Path, device: str = "cpu", seed: int = 0, **overrides):
    """A `TrainPlan` for DiffSHEG on a folder of BEAT bvh + wav (+ face json) pairs.

    ``overrides`` set `DiffShegConfig` fields (architecture, window) or `TrainOptions` fields (batch size,
    learning rate, held-out seconds, ``face_videos``).
    """
    config_names = {f.name for f in fields(DiffShegConfig)}
    option_names = {f.name for f in fields(TrainOptions)}
    unknown = sorted(set(overrides) - config_names - option_names)
    if unknown:
        raise ListenerctlError(f"unknown diffsheg training options {', '.join(unknown)}.")
    options = TrainOptions(**{k: tuple(v) if k == "face_videos" else v
                              for k, v in overrides.items() if k in option_names})
    config = DiffShegConfig(**{k: v for k, v in overrides.items() if k in config_names})
    parsed = parse_audio_encoder(config.audio_encoder)
    encoder = None if parsed is None else PretrainedAudioEncoder(*parsed, FPS, device=device)
    train, heldout, styles, skeleton, described = load_beat_folder(Path(data), options, encoder)
    config = replace(config, styles=styles, encoder_dim=0 if encoder is None else encoder.dim)
    silent_frames = audio_features(np.zeros(SAMPLE_RATE, np.float32), encoder)
    silence = silent_frames[len(silent_frames) // 2]  # one frame of digital silence's features [A]
    torch.manual_seed(seed)
    model = UniEG(config)
    for name, value in normalisation_stats(Path(data), train).items():
        getattr(model, name).copy_(torch.from_numpy(value))
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=options.lr, weight_decay=options.weight_decay)
    card = {
        "model": NAME, "config": asdict(config), "spec": GESTURE_SPEC, "fps": FPS,
        "expression_spec": EXPRESSION_SPEC, "train_options": asdict(options),
        "skeleton": skeleton_to_card(skeleton),
        "training_data": {
            "source": str(Path(data).resolve()), "clips": described,
            "expression": expression_source(train),
            "augmentation": (f"{options.silence_share:.0%} of training crops have their audio replaced by digital "
                             "silence and their motion by their first frame held still (a silent speaker holds "
                             "still); style ids drop to 'any' "
                             f"{options.style_dropout:.0%} of the time; {options.short_batch_share:.0%} of "
                             "batches are shorter than a window"),
            "objective": (f"noise prediction through x̂0 with Min-SNR-γ weighting (γ = {config.min_snr}) plus "
                          f"{options.velocity_weight} × the x̂0 velocity error (`diffusion_loss`); AdamW, lr "
                          f"{options.lr} with cosine decay to a tenth over {options.lr_decay_steps} steps"),
            "normalisation": "beat141 and beatface51 by BEAT's shipped bvh/json mean and std "
                             f"(stds floored at {GESTURE_STD_FLOOR} deg / {EXPRESSION_STD_FLOOR}; gesture stds capped at "
                             f"{GESTURE_STD_CAP} deg: BEAT's forearm X/Z stds of ~2000 deg come from angles that "
                             "wander over whole turns), copied into "
                             "the weights as buffers; log-mel by the training clips' mean and std",
            "note": DEMO_NOTE if sum(len(c.audio) for c in train) < DEMO_FRAMES else "",
        },
    }
    return TrainPlan(model=model, optimizers=[optimizer],
                     batches=training_batches(train, options, config.window, device, seed, silence),
                     loss=lambda batch: diffusion_loss(model, batch, options.velocity_weight),
                     evaluate=lambda: evaluate_heldout(DiffSheg(model, card, device), train, heldout, options),
                     card=card, on_step=lambda step: _set_learning_rate(optimizer, options, step))


def _set_learning_rate(optimizer: torch.optim.Optimizer, options: TrainOptions, step: int) -> None:
    """Cosine decay from ``options.lr`` to a tenth of it over ``lr_decay_steps`` (constant when 0)."""
    if options.lr_decay_steps <= 0:
        return
    progress = min(step / options.lr_decay_steps, 1.0)
    for group in optimizer.param_groups:
        group["lr"] = options.lr * (0.1 + 0.45 * (1 + np.cos(np.pi * progress)))


DEMO_FRAMES = int(10 * 60 * FPS)  # less than ten minutes of training audio makes a demonstration model
DEMO_NOTE = ("A demonstration: trained on about one minute of one BEAT speaker, its gestures only show the "
             "pipeline working, not DiffSHEG's quality. To train on full BEAT, put every speaker's "
             "<id>_<name>_*.bvh, .wav and face .json into one folder (with BEAT's stats/ folder) and run "
             "`listenerctl train diffsheg --data FOLDER --steps 200000` on a GPU (through `make_train_plan`, "
             "set lr_decay_steps=200000 so the learning rate decays over the whole run).")


# ---- held-out evaluation -------------------------------------------------------------------------------

def gesture_baselines(train: list[TrainingClip], length: int, count: int, seed: int) -> dict[str, np.ndarray]:
    """Reference gestures [count, length, 141]: 'mean_pose_noise' (the training mean pose plus i.i.d.
    Gaussian noise of the training per-channel std) and 'random_training_clip' (random training crops)."""
    rng = np.random.default_rng(seed)
    clips = [c.gesture for c in train if c.gesture is not None and len(c.gesture) >= length]
    pooled = np.concatenate(clips)
    noise = pooled.mean(0) + rng.standard_normal((count, length, GESTURE_DIM)) * pooled.std(0)
    crops = []
    for _ in range(count):
        clip = clips[rng.integers(len(clips))]
        start = rng.integers(0, len(clip) - length + 1)
        crops.append(clip[start:start + length])
    return {"mean_pose_noise": noise, "random_training_clip": np.stack(crops)}


def evaluate_heldout(generator: DiffSheg, train: list[TrainingClip], heldout: list[TrainingClip],
                     options: TrainOptions, seed: int = 1234) -> dict[str, float]:
    """Held-out metrics, K = ``options.eval_samples`` samples per held-out clip (DDIM, config steps):

    - FGD (`metrics.gesture.gesture_fd`, beat141 angles + velocities) of the samples, of the
      'mean_pose_noise' and 'random_training_clip' baselines (`gesture_baselines`) against the real
      held-out gestures;
    - beat alignment (`metrics.gesture`) of samples, baselines and the real gestures with the speech;
    - diversity (mean L1 between samples, degrees summed over channels);
    - motion energy on the speech and on digital silence of the same length — expression weights'
      `motion_energy`, gesture `gesture_speed` (cm/frame) — a model that listens moves less in silence.
    """
    k = options.eval_samples
    generated, silent_runs, real, speech = [], [], [], []
    for clip in heldout:
        silence = generator.audio_features(np.zeros(len(clip.speech), np.float32), len(clip.audio))
        generated.append(generator.sample(clip.audio, k, seed))
        silent_runs.append(generator.sample(silence, k, seed))
        real.append(clip.gesture)
        speech.append(clip.speech)
    length = min(len(r) for r in real)
    candidates = {"diffsheg": np.concatenate([m.gesture.data[:, :length] for m in generated]),
                  **gesture_baselines(train, length, k * len(heldout), seed)}
    reference = np.stack([r[:length] for r in real])
    metrics: dict[str, float] = {}
    for name, motion in candidates.items():
        metrics[f"fgd_{name}"] = gesture_fd(motion, reference, FPS)
        metrics[f"beat_align_{name}"] = float(np.mean([
            beat_alignment_score(sample_, speech[i // k], FPS, SAMPLE_RATE) for i, sample_ in enumerate(motion)]))
    metrics["beat_align_real"] = float(np.mean([beat_alignment_score(r, a, FPS, SAMPLE_RATE)
                                                for r, a in zip(real, speech)]))
    metrics["diversity_diffsheg"] = float(np.mean([diversity(m.gesture.data) for m in generated])) if k > 1 else 0.0
    skeleton = skeleton_from_card(generator.card)
    energy = {"expression": lambda m: motion_energy(m.expression.data),
              "gesture": lambda m: gesture_speed(m.gesture.data, skeleton)}
    for part, measure in energy.items():
        metrics[f"{part}_energy_speech"] = float(np.mean([measure(m) for m in generated]))
        metrics[f"{part}_energy_silence"] = float(np.mean([measure(m) for m in silent_runs]))
    metrics["gesture_energy_real"] = float(np.mean([gesture_speed(r[None], skeleton) for r in real]))
    return metrics
