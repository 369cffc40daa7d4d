"""``cnnlab data summary FILE``: a microscope file described in a few aligned lines."""

from __future__ import annotations

from pathlib import Path

from cnnlab.microscopy.formats import describe_microscopy_file

#: How the dimensions read for people, in the order microscope software lists them.
_DIM_NAMES = {
    "P": "positions",
    "T": "time points",
    "Z": "planes",
    "C": "channels",
    "Y": "height",
    "X": "width",
}


def format_microscopy_description(path: str | Path) -> str:
    """The format, dimensions, channels, pixel type and size, and intensities of one file."""
    info = describe_microscopy_file(path)
    rows = [("file", info["path"]), ("format", info["format"])]
    for dim in "PTZCYX":
        if dim in info["dims"]:
            rows.append((_DIM_NAMES[dim], f"{info['dims'][dim]:,}"))
    if info.get("position_names"):
        rows.append(("position names", ", ".join(info["position_names"])))
    if info["channel_names"]:
        rows.append(("channel names", ", ".join(info["channel_names"])))
    rows.append(("pixels", f"{info['dtype']} ({info['bit_depth']}-bit)"))
    size = info.get("pixel_size")
    if size:
        rows.append(("pixel size", f"{size['y']:g} x {size['x']:g} {size.get('unit') or ''}"))
    if "intensity" in info:
        low, median, high = (info["intensity"][k] for k in ("min", "median", "max"))
        rows.append(("intensity", f"min {low:g}, median {median:g}, max {high:g}"))
    choose = [
        f"--{flag}"
        for dim, flag in zip("PTZC", ("position", "time", "plane", "channel"), strict=True)
        if info["dims"].get(dim, 1) > 1
    ]
    if choose:
        rows.append(("to read one image", "choose with " + ", ".join(choose)))
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)
