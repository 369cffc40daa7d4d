"""Reading one field from microscope files: real TIFF, OME-TIFF and CZI files written here, and
the ``nd2`` and bioio-lif readers mocked at their boundary (no Python package writes those two).

Every value test compares the plane returned with the NumPy array that was written.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import numpy as np
import pytest
import tifffile

from cnnlab.errors import CnnlabError
from cnnlab.microscopy import formats_source
from cnnlab.microscopy.formats import (
    describe_microscopy_file,
    is_microscopy_file,
    read_field,
)

RNG = np.random.default_rng(11)


def _stack(shape: tuple[int, ...], dtype=np.uint16) -> np.ndarray:
    """Distinct values everywhere, so a wrong plane can never compare equal."""
    return RNG.permutation(np.prod(shape)).reshape(shape).astype(dtype)


# --------------------------------------------------------------------------------- plain TIFF
def test_2d_imagej_tiff_is_read_in_native_order_without_choices(tmp_path: Path) -> None:
    pixels = _stack((20, 30)).astype(">u2")  # ImageJ writes big-endian
    path = tmp_path / "field.tif"
    tifffile.imwrite(path, pixels, imagej=True)
    field = read_field(path)
    np.testing.assert_array_equal(field.image, pixels)
    assert field.image.dtype == np.uint16 and field.image.dtype.isnative
    assert (field.bit_depth, field.selection, field.label) == (16, {}, "field.tif")
    assert field.path == path


@pytest.mark.parametrize(("dtype", "bits"), [(np.uint8, 8), (np.int16, 16), (np.float32, 32)])
def test_bit_depth_follows_the_dtype(tmp_path: Path, dtype, bits: int) -> None:
    pixels = _stack((6, 7), dtype)
    tifffile.imwrite(tmp_path / "a.tif", pixels)
    field = read_field(tmp_path / "a.tif")
    assert field.bit_depth == bits and field.image.dtype == dtype
    np.testing.assert_array_equal(field.image, pixels)


def test_imagej_hyperstack_returns_exactly_the_chosen_plane(tmp_path: Path) -> None:
    pixels = _stack((2, 3, 4, 5, 6))
    path = tmp_path / "hyper.tif"
    tifffile.imwrite(path, pixels, imagej=True, metadata={"axes": "TZCYX"})
    for t, z, c in np.ndindex(2, 3, 4):
        field = read_field(path, time=t, plane=z, channel=c)
        np.testing.assert_array_equal(field.image, pixels[t, z, c])
    assert field.selection == {"time": 1, "plane": 2, "channel": 3}
    assert field.label == "hyper.tif - T=1 - Z=2 - C=3"


def test_missing_choices_name_every_flag_and_range(tmp_path: Path) -> None:
    path = tmp_path / "hyper.tif"
    tifffile.imwrite(path, _stack((2, 3, 4, 5, 6)), imagej=True, metadata={"axes": "TZCYX"})
    with pytest.raises(CnnlabError) as caught:
        read_field(path, channel=0)
    assert str(caught.value) == (
        f"{path}: has 2 time points and 3 planes; choose with --time 0-1 and --plane 0-2"
    )


def test_out_of_range_and_absent_dimensions_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "zc.tif"
    tifffile.imwrite(path, _stack((3, 2, 5, 6)), imagej=True, metadata={"axes": "ZCYX"})
    with pytest.raises(CnnlabError, match=r"--plane 3 is out of range; .* --plane 0-2$"):
        read_field(path, plane=3, channel=0)
    with pytest.raises(CnnlabError, match="--channel -1 is out of range"):
        read_field(path, plane=0, channel=-1)
    with pytest.raises(CnnlabError, match=r"has one time point, .* leave out --time"):
        read_field(path, plane=0, channel=0, time=0)
    with pytest.raises(CnnlabError, match="no channel named 'GFP'; its channels have no names"):
        read_field(path, plane=0, channel="GFP")
    # A number given as text (as a CLI passes it) is an index when no channel has that name.
    np.testing.assert_array_equal(
        read_field(path, plane=2, channel="1").image, read_field(path, plane=2, channel=1).image
    )


def test_plain_stack_counts_as_planes(tmp_path: Path) -> None:
    pixels = _stack((4, 5, 6))
    path = tmp_path / "stack.tiff"
    tifffile.imwrite(path, pixels, photometric="minisblack")  # axes QYX: no hyperstack metadata
    with pytest.raises(CnnlabError, match="has 4 planes; choose with --plane 0-3"):
        read_field(path)
    np.testing.assert_array_equal(read_field(path, plane=2).image, pixels[2])


def test_rgb_samples_are_channels_chosen_by_name(tmp_path: Path) -> None:
    pixels = _stack((5, 6, 3), np.uint8)
    path = tmp_path / "colour.tif"
    tifffile.imwrite(path, pixels, photometric="rgb")
    with pytest.raises(CnnlabError, match=r"has 3 channels \(red, green, blue\); choose with"):
        read_field(path)
    field = read_field(path, channel="Green")
    np.testing.assert_array_equal(field.image, pixels[..., 1])
    assert field.label == "colour.tif - C=1" and field.bit_depth == 8


def test_several_series_are_positions(tmp_path: Path) -> None:
    first, second = _stack((5, 6)), _stack((5, 6))
    path = tmp_path / "two.tif"
    with tifffile.TiffWriter(path) as tif:
        tif.write(first)
        tif.write(second)
    with pytest.raises(CnnlabError, match="has 2 positions; choose with --position 0-1"):
        read_field(path)
    np.testing.assert_array_equal(read_field(path, position=1).image, second)


# --------------------------------------------------------------------------------- OME-TIFF
def _ome(path: Path, pixels: np.ndarray, names: list[str]) -> None:
    tifffile.imwrite(
        path,
        pixels,
        ome=True,
        metadata={
            "axes": "TCZYX",
            "Channel": {"Name": names},
            "PhysicalSizeX": 0.5,
            "PhysicalSizeY": 0.25,
        },
    )


def test_ome_tiff_through_bioio_returns_the_chosen_plane(tmp_path: Path) -> None:
    pixels = _stack((2, 3, 4, 5, 6))
    path = tmp_path / "acq.ome.tif"
    _ome(path, pixels, ["DAPI", "GFP", "BF"])
    with pytest.raises(CnnlabError) as caught:
        read_field(path)
    assert str(caught.value) == (
        f"{path}: has 2 time points, 4 planes and 3 channels (DAPI, GFP, BF); choose with "
        "--time 0-1, --plane 0-3 and --channel 0-2 or a name"
    )
    for t, c, z in [(0, 0, 0), (1, 2, 3), (1, 1, 0), (0, 2, 2)]:
        field = read_field(path, time=t, plane=z, channel=["dapi", "Gfp", "BF"][c])
        np.testing.assert_array_equal(field.image, pixels[t, c, z])
        assert field.selection == {"time": t, "plane": z, "channel": c}
    with pytest.raises(CnnlabError, match="no channel named 'RFP'; its channels are DAPI, GFP"):
        read_field(path, time=0, plane=0, channel="RFP")

    described = describe_microscopy_file(path)
    assert described["format"] == "OME-TIFF"
    assert described["dims"] == {"T": 2, "Z": 4, "C": 3, "Y": 5, "X": 6}
    assert described["channel_names"] == ["DAPI", "GFP", "BF"]
    assert described["pixel_size"] == {"y": 0.25, "x": 0.5, "unit": "µm"}
    assert (described["bit_depth"], described["dtype"]) == (16, "uint16")
    assert "intensity" not in described  # not one plane: no single set of intensities


def test_ome_tiff_scenes_of_different_shapes_are_positions(tmp_path: Path) -> None:
    small, large = _stack((1, 2, 1, 4, 5)), _stack((1, 1, 1, 7, 3))
    path = tmp_path / "scenes.ome.tiff"
    with tifffile.TiffWriter(path, ome=True) as tif:
        tif.write(small, photometric="minisblack", metadata={"axes": "TCZYX"})
        tif.write(large, photometric="minisblack", metadata={"axes": "TCZYX"})
    with pytest.raises(CnnlabError, match=r"has 2 positions .*; choose with --position 0-1 and"):
        read_field(path)
    np.testing.assert_array_equal(read_field(path, position=0, channel=1).image, small[0, 1, 0])
    # The second scene has one channel: its own shape is what the choices are checked against.
    np.testing.assert_array_equal(read_field(path, position=1).image, large[0, 0, 0])
    with pytest.raises(CnnlabError, match="has one channel"):
        read_field(path, position=1, channel=1)


# --------------------------------------------------------------------------------- summaries
def test_describe_2d_tiff_gives_intensities_and_pixel_size(tmp_path: Path) -> None:
    pixels = _stack((9, 11))
    path = tmp_path / "f.tif"
    tifffile.imwrite(path, pixels, imagej=True, resolution=(4.0, 2.0), metadata={"unit": "micron"})
    described = describe_microscopy_file(path)
    assert described["dims"] == {"Y": 9, "X": 11} and described["format"] == "ImageJ TIFF"
    assert described["pixel_size"] == {"y": 0.5, "x": 0.25, "unit": "µm"}
    assert described["intensity"] == {
        "min": float(pixels.min()),
        "median": float(np.median(pixels)),
        "max": float(pixels.max()),
    }


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.tif", True),
        ("a.TIFF", True),
        ("a.ome.tif", True),
        ("b.nd2", True),
        ("c.czi", True),
        ("d.lif", True),
        ("e.png", False),
        ("tif", False),
    ],
)
def test_is_microscopy_file(name: str, expected: bool) -> None:
    assert is_microscopy_file(name) is expected


# --------------------------------------------------------------------------------- errors
def test_bad_files_are_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(CnnlabError, match="no such file or directory; check the path"):
        read_field(tmp_path / "missing.nd2")
    with pytest.raises(CnnlabError, match="is a folder"):
        read_field(tmp_path)
    (tmp_path / "a.png").write_bytes(b"x")
    with pytest.raises(CnnlabError, match=r"not a microscope file .*\.nd2, \.czi or \.lif file"):
        read_field(tmp_path / "a.png")
    (tmp_path / "empty.tif").write_bytes(b"")
    with pytest.raises(CnnlabError, match="empty file"):
        read_field(tmp_path / "empty.tif")
    (tmp_path / "text.tif").write_text("not an image at all")
    with pytest.raises(CnnlabError, match="damaged or not a TIFF file"):
        read_field(tmp_path / "text.tif")
    (tmp_path / "text.ome.tif").write_text("not an image at all")
    with pytest.raises(CnnlabError, match="damaged or not an OME-TIFF file"):
        read_field(tmp_path / "text.ome.tif")


def test_truncated_tiff_never_returns_a_zero_filled_plane(tmp_path: Path) -> None:
    pixels = _stack((40, 50))
    whole = tmp_path / "whole.tif"
    tifffile.imwrite(whole, pixels, rowsperstrip=8, compression="zlib")
    data = whole.read_bytes()
    (tmp_path / "cut.tif").write_bytes(data[: len(data) - 300])  # the last strip loses its end
    with pytest.raises(
        CnnlabError, match=r"truncated TIFF \(a strip ends past the end of the file"
    ):
        read_field(tmp_path / "cut.tif")
    # ImageJ keeps its metadata after the pixels: a cut there is damage tifffile logs.
    tifffile.imwrite(whole, _stack((3, 40, 50)), imagej=True, metadata={"axes": "ZYX"})
    data = whole.read_bytes()
    (tmp_path / "cut.tif").write_bytes(data[: len(data) - 500])
    with pytest.raises(CnnlabError, match="damaged TIFF"):
        read_field(tmp_path / "cut.tif", plane=0)


def test_huge_plane_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "tall.tif"
    tifffile.imwrite(path, np.zeros((20_001, 2), np.uint8))
    with pytest.raises(CnnlabError, match="larger than cnnlab reads"):
        read_field(path)


def test_series_read_whole_is_capped(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "s.tif"
    tifffile.imwrite(path, _stack((2, 5, 6)), imagej=True, metadata={"axes": "ZYX"})
    monkeypatch.setattr(formats_source, "MAX_BYTES", 50)  # one page is 60 bytes
    with pytest.raises(CnnlabError, match="larger than cnnlab reads"):
        read_field(path, plane=0)


def test_nan_pixels_are_refused(tmp_path: Path) -> None:
    pixels = np.ones((4, 4), np.float32)
    pixels[1, 2] = np.nan
    tifffile.imwrite(tmp_path / "nan.tif", pixels)
    with pytest.raises(CnnlabError, match="1 of 16 pixels of the plane are not finite"):
        read_field(tmp_path / "nan.tif")


# --------------------------------------------------------------------------------- extras
def test_missing_extra_says_what_to_install(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "a.nd2").write_bytes(b"ND2 bytes")
    (tmp_path / "b.ome.tif").write_bytes(b"TIFF bytes")
    monkeypatch.setitem(sys.modules, "nd2", None)  # makes `import nd2` fail
    monkeypatch.setitem(sys.modules, "bioio", None)
    with pytest.raises(CnnlabError) as caught:
        read_field(tmp_path / "a.nd2")
    assert str(caught.value) == (
        f"{tmp_path / 'a.nd2'}: reading .nd2 files needs the microscopy extra: "
        "pip install 'cnnlab[microscopy]'"
    )
    with pytest.raises(CnnlabError, match=r"reading \.ome\.tif files needs the microscopy extra"):
        read_field(tmp_path / "b.ome.tif")


@pytest.mark.parametrize(("suffix", "package"), [(".czi", "bioio-czi"), (".lif", "bioio-lif")])
def test_missing_bioio_plugin_names_it(tmp_path: Path, monkeypatch, suffix, package) -> None:
    path = tmp_path / f"a{suffix}"
    path.write_bytes(b"stand-in bytes")
    monkeypatch.setitem(sys.modules, package.replace("-", "_"), None)  # makes the import fail
    with pytest.raises(CnnlabError) as caught:
        read_field(path)
    assert str(caught.value) == (
        f"{path}: reading {suffix} files needs the {package} plugin: pip install {package}"
    )


@pytest.mark.parametrize(
    ("name", "reason"),
    [("x.czi", "a CZI file (Not enough data read"), ("x.lif", "a LIF file (file is not supp")],
)
def test_junk_is_refused_by_the_real_plugin(tmp_path: Path, name: str, reason: str) -> None:
    (tmp_path / name).write_bytes(b"junk" * 32)
    with pytest.raises(CnnlabError) as caught:
        read_field(tmp_path / name)
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / name}: damaged or not {reason}")
    assert "\n" not in message and "Reader:" not in message  # the plugin's reason, in one line


# --------------------------------------------------------------------------------- mocked readers
class FakeND2File:
    """Stands in for ``nd2.ND2File`` (no Python package can write an .nd2 file): exactly the
    attributes cnnlab reads, with the pixels as a NumPy array in the order of ``sizes``."""

    pixels: np.ndarray
    sizes: dict[str, int]
    names: list[str]
    opened: ClassVar[list[FakeND2File]] = []

    def __init__(self, path) -> None:
        self.path, self.closed = path, False
        self.dtype = self.pixels.dtype
        channels = [SimpleNamespace(channel=SimpleNamespace(name=name)) for name in self.names]
        self.metadata = SimpleNamespace(channels=channels)
        FakeND2File.opened.append(self)

    def voxel_size(self, channel: int = 0) -> SimpleNamespace:
        return SimpleNamespace(x=0.065, y=0.065, z=0.5)

    def to_dask(self) -> np.ndarray:  # a NumPy array indexes like nd2's dask array
        return self.pixels

    def close(self) -> None:
        self.closed = True


def _fake_nd2(monkeypatch, sizes: dict[str, int], names: list[str]) -> np.ndarray:
    import nd2

    pixels = _stack(tuple(sizes.values()))
    fake = type("Fake", (FakeND2File,), {"pixels": pixels, "sizes": sizes, "names": names})
    monkeypatch.setattr(nd2, "ND2File", fake)
    return pixels


def test_nd2_planes_are_chosen_by_position_time_plane_and_channel(tmp_path, monkeypatch) -> None:
    """nd2.ND2File is mocked: the test checks cnnlab's choosing, not nd2's decoding."""
    sizes = {"T": 2, "P": 3, "Z": 2, "C": 2, "Y": 5, "X": 6}
    pixels = _fake_nd2(monkeypatch, sizes, ["Phase", "GFP"])
    path = tmp_path / "114_1354-001.nd2"
    path.write_bytes(b"stand-in")
    with pytest.raises(CnnlabError) as caught:
        read_field(path)
    assert str(caught.value) == (
        f"{path}: has 3 positions, 2 time points, 2 planes and 2 channels (Phase, GFP); choose "
        "with --position 0-2, --time 0-1, --plane 0-1 and --channel 0-1 or a name"
    )
    for t, p, z, c in [(0, 0, 0, 0), (1, 2, 1, 1), (0, 1, 1, 0)]:
        field = read_field(path, position=p, time=t, plane=z, channel=("phase", "gfp")[c])
        np.testing.assert_array_equal(field.image, pixels[t, p, z, c])
    assert field.label == "114_1354-001.nd2 - P=1 - T=0 - Z=1 - C=0"
    assert FakeND2File.opened and all(file.closed for file in FakeND2File.opened)
    described = describe_microscopy_file(path)
    assert described["format"] == "ND2" and described["channel_names"] == ["Phase", "GFP"]
    assert described["pixel_size"] == {"y": 0.065, "x": 0.065, "unit": "µm"}


def test_nd2_single_channel_label_is_imagejs(tmp_path, monkeypatch) -> None:
    """nd2.ND2File is mocked (no package writes .nd2); the label is what crop names carry."""
    pixels = _fake_nd2(monkeypatch, {"C": 3, "Y": 4, "X": 4}, ["BF", "DAPI", "GFP"])
    path = tmp_path / "114_1354-001.nd2"
    path.write_bytes(b"stand-in")
    field = read_field(path, channel=0)
    assert field.label == "114_1354-001.nd2 - C=0" and field.selection == {"channel": 0}
    np.testing.assert_array_equal(field.image, pixels[0])


def test_nd2_not_recognised_is_damaged(tmp_path) -> None:
    (tmp_path / "x.nd2").write_bytes(b"junk" * 16)  # the real nd2 reader refuses it
    with pytest.raises(CnnlabError, match="damaged or not an ND2 file"):
        read_field(tmp_path / "x.nd2")


class FakeBioImage:
    """Stands in for ``bioio.BioImage`` reading a LIF: liffile, the only LIF library installed,
    reads LIF but cannot write it, and no other package can. The attributes cnnlab reads, over
    one NumPy array ``TCZYX`` per scene (a LIF "image")."""

    scenes_pixels: list[np.ndarray]
    names: list[str]

    def __init__(self, path, reader=None) -> None:
        assert reader is sys.modules["bioio_lif"].Reader  # the real plugin, never a fallback
        self.scenes = tuple(f"Position {i + 1}" for i in range(len(self.scenes_pixels)))
        self.set_scene(0)

    def set_scene(self, number: int) -> None:
        self.current = self.scenes_pixels[number]
        self.dims = SimpleNamespace(order="TCZYX", shape=self.current.shape)
        self.dtype = self.current.dtype
        self.channel_names = self.names[: self.current.shape[1]]
        self.physical_pixel_sizes = SimpleNamespace(Z=None, Y=0.1, X=0.1)

    def get_image_dask_data(self, order: str, **chosen: int) -> np.ndarray:
        assert order == "YX"
        t, c, z = (chosen.get(dim, 0) for dim in "TCZ")
        return self.current[t, c, z]


def test_lif_scenes_and_channels_through_bioio(tmp_path, monkeypatch) -> None:
    """bioio.BioImage is mocked (nothing writes LIF): checks the choosing, not the decoding."""
    import bioio
    import bioio_lif  # noqa: F401  (the real plugin, which the stand-in checks it is given)

    scenes = [_stack((1, 2, 3, 4, 5)), _stack((1, 2, 3, 4, 5))]
    fake = type("Fake", (FakeBioImage,), {"scenes_pixels": scenes, "names": ["TL", "EGFP"]})
    monkeypatch.setattr(bioio, "BioImage", fake)
    path = tmp_path / "slide.lif"
    path.write_bytes(b"stand-in")
    with pytest.raises(CnnlabError, match=r"3 planes and 2 channels \(TL, EGFP\); choose with"):
        read_field(path, position=0)
    field = read_field(path, position=1, plane=2, channel="egfp")
    np.testing.assert_array_equal(field.image, scenes[1][0, 1, 2])
    assert field.label == "slide.lif - P=1 - Z=2 - C=1"
    described = describe_microscopy_file(path)
    assert described["position_names"] == ["Position 1", "Position 2"]
    assert described["format"] == "LIF"


# --------------------------------------------------------------------------------- CZI
def _czi(path: Path, scenes: list[np.ndarray], names: list[str], scene_names: list[str]) -> None:
    """A CZI written by pylibCZIrw (Zeiss' libCZI): one ``TZCYX`` array per scene.

    pylibCZIrw stores the pixel size as given, and CZI files keep it in metres (bioio-czi
    reports µm). It records no scene list in the metadata, where ZEN puts one and bioio-czi
    reads it, so the list is added the way ZEN writes it.
    """
    from pylibCZIrw import czi as pyczi

    with pyczi.create_czi(str(path)) as czi:
        for number, pixels in enumerate(scenes):
            for t, z, c in np.ndindex(pixels.shape[:3]):
                plane = {"T": t, "Z": z, "C": c}
                # Scenes side by side on the slide, as a multi-position acquisition puts them.
                czi.write(pixels[t, z, c, ..., None], (1000 * number, 0), plane, scene=number)
        czi.write_metadata(channel_names=dict(enumerate(names)), scale_x=0.1e-6, scale_y=0.2e-6)
    listed = "".join(f'<Scene Index="{i}" Name="{name}"/>' for i, name in enumerate(scene_names))
    with pyczi.edit_czi(str(path)) as editor, editor.edit_session() as builder:
        xml = builder.get_xml()
        builder.set_xml(xml.replace("</Channels>", f"</Channels><S><Scenes>{listed}</Scenes></S>"))


def test_czi_every_plane_of_scenes_of_different_sizes(tmp_path: Path) -> None:
    """A real CZI: scenes of different sizes, each with several time points, planes and
    channels; every plane read back equals the one written."""
    first, second = _stack((2, 3, 2, 5, 6)), _stack((1, 3, 2, 7, 4))  # T, Z, C, Y, X
    path = tmp_path / "slide.czi"
    _czi(path, [first, second], ["TL", "EGFP"], ["A1", "B2"])
    with pytest.raises(CnnlabError) as caught:
        read_field(path)
    assert str(caught.value) == (
        f"{path}: has 2 positions (A1, B2), 2 time points, 3 planes and 2 channels (TL, EGFP); "
        "choose with --position 0-1, --time 0-1, --plane 0-2 and --channel 0-1 or a name"
    )
    for t, z, c in np.ndindex(2, 3, 2):
        field = read_field(path, position=0, time=t, plane=z, channel=c)
        np.testing.assert_array_equal(field.image, first[t, z, c])
    # The second scene is checked against its own shape: one time point, 7x4 pixels. Its planes
    # past the first are where a Z stack read in one block misplaces the pixels.
    with pytest.raises(CnnlabError, match="has one time point, so there is nothing to choose"):
        read_field(path, position=1, time=0, plane=0, channel=0)
    for z, c in np.ndindex(3, 2):
        field = read_field(path, position=1, plane=z, channel=("tl", "egfp")[c])
        np.testing.assert_array_equal(field.image, second[0, z, c])
        assert field.image.dtype == np.uint16 and field.bit_depth == 16
    assert field.label == "slide.czi - P=1 - Z=2 - C=1"
    assert field.selection == {"position": 1, "plane": 2, "channel": 1}

    described = describe_microscopy_file(path)
    assert described["format"] == "CZI" and described["position_names"] == ["A1", "B2"]
    assert described["dims"] == {"P": 2, "T": 2, "Z": 3, "C": 2, "Y": 5, "X": 6}
    assert described["channel_names"] == ["TL", "EGFP"]
    assert described["pixel_size"] == {
        "y": pytest.approx(0.2),
        "x": pytest.approx(0.1),
        "unit": "µm",
    }


def test_czi_single_plane_needs_no_choice(tmp_path: Path) -> None:
    pixels = _stack((1, 1, 1, 9, 8))
    path = tmp_path / "one.czi"
    _czi(path, [pixels], ["BF"], ["A1"])
    field = read_field(path)
    np.testing.assert_array_equal(field.image, pixels[0, 0, 0])
    assert (field.label, field.selection) == ("one.czi", {})
    described = describe_microscopy_file(path)
    assert "position_names" not in described and described["dims"] == {"Y": 9, "X": 8}
    assert described["intensity"]["max"] == float(pixels.max())
