"""Outputs: streamed MP4 (and GIF) writing, atomic files, run.json, and reading a video back."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from syncos.errors import UserError, first_line


def check_outdir(path: str | Path) -> Path:
    """Fail now, creating nothing, if the output folder could not be created or written to."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise UserError(f"output folder {str(out)!r} is a file; name a folder (it is created if missing)")
    existing = next((p for p in (out, *out.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        raise UserError(f"output folder {str(out)!r} cannot be created: {str(existing)!r} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"output folder {str(out)!r} cannot be written: {str(existing)!r} is not writable")
    return out


def prepare_outdir(path: str | Path) -> Path:
    """Create the output folder and check that it can be written to."""
    out = check_outdir(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".syncos-check-"):
            pass
    except OSError as e:
        raise UserError(f"output folder {str(out)!r} cannot be written: {e.strerror or e}") from None
    return out


@contextlib.contextmanager
def output_folder(path: str | Path) -> Iterator[Path]:
    """The output folder, created on entry; if the body fails, the folders it created are removed
    again (when still empty), so a failed or interrupted run leaves no empty folder behind."""
    out = Path(path)
    created = [p for p in (out, *out.parents) if not p.exists()]
    out = prepare_outdir(out)
    try:
        yield out
    except BaseException:
        for p in created:  # deepest first
            with contextlib.suppress(OSError):
                p.rmdir()
        raise


def partial_path(final: Path) -> Path:
    """Where :func:`atomic_path` writes before the rename (a crash may leave it behind)."""
    return final.with_name(f".{final.stem}.partial{final.suffix}")


def sync(path: Path) -> None:
    """Flush a file's or a folder's data to disk (os.fsync), so a rename of it survives a power loss."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """A temporary path beside ``final``, renamed onto it on success and removed on any failure.

    The data is synced before the rename and the folder after it: after a crash or a power loss
    ``final`` holds its old content or its new one, never a torn mix of the two.
    """
    tmp = partial_path(final)
    try:
        yield tmp
        sync(tmp)
        os.replace(tmp, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    with contextlib.suppress(PermissionError):  # Windows opens no folder
        sync(final.parent)


def write_json(data: Any, path: Path) -> None:
    """Strict JSON (no NaN or infinity, which other readers reject), written atomically."""
    text = json.dumps(data, indent=2, default=str, allow_nan=False)
    with atomic_path(path) as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")


def write_tensors(tensors: dict[str, Any], path: Path, metadata: dict[str, str] | None = None) -> None:
    """A safetensors file (with ``metadata`` in its header), written atomically (tensors moved to the CPU)."""
    from safetensors.torch import save_file

    out, seen = {}, set()
    for k, v in tensors.items():
        v = v.detach().cpu().contiguous()
        out[k] = v.clone() if v.untyped_storage().data_ptr() in seen else v  # no shared storage allowed
        seen.add(v.untyped_storage().data_ptr())
    with atomic_path(path) as tmp:
        save_file(out, str(tmp), metadata=metadata)


def write_video(
    frames: Iterable[np.ndarray],
    path: Path,
    fps: float,
    gif: Path | None = None,
) -> int:
    """Stream uint8 frames (H, W, 3) into an H.264 MP4 (and optionally a GIF); returns the frame count.

    Frames pass through one at a time, so a long video is never held in memory (a GIF is small by
    nature and is encoded as it goes, too). Nothing is left at ``path``/``gif`` if anything fails.
    """
    import imageio.v2 as imageio
    import imageio_ffmpeg

    count = 0
    with contextlib.ExitStack() as stack:
        mp4_tmp = stack.enter_context(atomic_path(path))
        gif_writer = None
        if gif is not None:
            gif_tmp = stack.enter_context(atomic_path(gif))
            gif_writer = stack.enter_context(
                imageio.get_writer(gif_tmp, format="GIF", duration=1000 / fps, loop=0)
            )
        writer = None
        try:
            for frame in frames:
                frame = np.ascontiguousarray(frame, dtype=np.uint8)
                if writer is None:
                    h, w = frame.shape[:2]
                    writer = imageio_ffmpeg.write_frames(
                        str(mp4_tmp),
                        (w, h),
                        fps=fps,
                        codec="libx264",
                        pix_fmt_out="yuv420p",
                        macro_block_size=2,
                        output_params=["-crf", "10"],
                        ffmpeg_log_level="error",
                    )
                    writer.send(None)
                writer.send(frame)
                if gif_writer is not None:
                    gif_writer.append_data(frame)
                count += 1
        finally:
            if writer is not None:
                writer.close()
        if count == 0:
            raise UserError("the video has no frames")
    return count


def read_video(path: str | Path) -> tuple[np.ndarray, float]:
    """All frames (T, H, W, 3) uint8 of a video file and its frame rate."""
    import imageio_ffmpeg

    p = Path(path)
    if not p.is_file():
        raise UserError(f"video {str(p)!r} does not exist")
    try:
        reader = imageio_ffmpeg.read_frames(str(p))
        meta = next(reader)
        w, h = meta["size"]
        frames = [np.frombuffer(b, dtype=np.uint8).reshape(h, w, 3) for b in reader]
    except (OSError, RuntimeError, StopIteration) as e:
        raise UserError(f"video {str(p)!r} cannot be read: {first_line(e)}") from None
    if not frames:
        raise UserError(f"video {str(p)!r} has no frames")
    return np.stack(frames), float(meta.get("fps") or 0.0)
