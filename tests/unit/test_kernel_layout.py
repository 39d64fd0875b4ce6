"""The packed parameter vectors: every field lands at the index the kernels read it from,
and the vectors a tile hands out stay the live ones."""

from __future__ import annotations

import numpy as np
import pytest

from rpucircuit.config import rpu
from rpucircuit.model import kernels
from rpucircuit.model.kernels import layout
from rpucircuit.model.tile import AnalogTile


def test_index_constants_follow_the_field_lists() -> None:
    groups = {
        layout.IO_FIELDS: [
            kernels.IO_PERFECT, kernels.IO_INP_BOUND, kernels.IO_INP_STEP, kernels.IO_NOISE,
            kernels.IO_OUT_BOUND, kernels.IO_OUT_STEP, kernels.IO_NM, kernels.IO_BM,
            kernels.IO_BM_MAX, kernels.IO_GAIN, kernels.IO_TF_TERMS,
            *(kernels.IO_TF + k for k in range(rpu.MAX_TRANSFER_TERMS)),
        ],
        layout.DP_FIELDS: [
            kernels.DP_CTOC, kernels.DP_K, kernels.DP_SOFT, kernels.DP_BOUNDED,
            kernels.DP_USE_ATT, kernels.DP_BWD_ATT, kernels.DP_ATT_LINES,
        ],
        layout.PAR_FIELDS: [kernels.PAR_UP, kernels.PAR_DOWN, kernels.PAR_WMAX, kernels.PAR_WMIN],
        layout.UPD_FIELDS: [kernels.UPD_BL, kernels.UPD_UM, kernels.UPD_DW_MIN, kernels.UPD_EXACT],
    }  # fmt: skip
    for fields, indices in groups.items():
        assert indices == list(range(len(fields)))
    assert (kernels.IO_LEN, kernels.DP_LEN, kernels.PAR_LEN, kernels.UPD_LEN) == (19, 7, 4, 4)


def test_pack_io_puts_each_field_at_its_name() -> None:
    io = rpu.IOConfig(
        inp_bound=1.5, inp_res=0.01, out_noise=0.07, out_bound=9.0, out_res=0.002,
        noise_management=False, bound_management=True, bm_max_factor=64.0,
        read_gain=0.97, input_transfer=(0.9, 0.1, 0.02),
    )  # fmt: skip
    got = dict(zip(layout.IO_FIELDS, kernels.pack_io(io), strict=True))
    assert got == {
        "perfect": 0.0,
        "inp_bound": 1.5,
        "inp_step": 0.01 * 2.0 * 1.5,  # the DAC step in input units
        "noise": 0.07,
        "out_bound": 9.0,
        "out_step": 0.002 * 2.0 * 9.0,
        "nm": 0.0,
        "bm": 1.0,
        "bm_max": 64.0,
        "gain": 0.97,
        "tf_terms": 3.0,
        "tf_c1": 0.9,
        "tf_c3": 0.1,
        "tf_c5": 0.02,
        **{f"tf_c{2 * k + 1}": 0.0 for k in range(3, rpu.MAX_TRANSFER_TERMS)},  # unused slots
    }
    assert kernels.pack_io(rpu.perfect_io())[kernels.IO_PERFECT] == 1.0


def test_default_io_fields_pack_to_the_old_read_path() -> None:
    """Unset read_gain and input_transfer pack to exactly gain 1 and no curve terms, the
    values for which the read kernel skips the multiply and the curve (its old path)."""
    for io in (
        rpu.IOConfig(),
        *(getattr(rpu.gokmen_vlasov_2016(), d) for d in ("forward", "backward")),
    ):
        v = kernels.pack_io(io)
        assert v[kernels.IO_GAIN] == 1.0 and v[kernels.IO_TF_TERMS] == 0.0
        assert not np.any(v[kernels.IO_TF :])


def test_pack_device_and_update_put_each_field_at_its_name() -> None:
    cfg = rpu.gokmen_vlasov_2016(k_half_select=0.2, bl=7)
    dp = dict(
        zip(layout.DP_FIELDS, kernels.pack_device(cfg.device, use_attenuation=True), strict=True)
    )
    assert dp == {
        "ctoc": 0.3, "k": 0.2, "soft": 0.0, "bounded": 1.0, "use_att": 1.0, "bwd_att": 0.0,
        "att_lines": 0.0,
    }  # fmt: skip
    both = kernels.pack_device(cfg.device, use_attenuation=False, backward_map=True)
    assert both[kernels.DP_BWD_ATT] == kernels.BWD_STALE and both[kernels.DP_USE_ATT] == 0.0
    lines = kernels.pack_device(cfg.device, use_attenuation=True, att_lines=True)
    assert lines[kernels.DP_ATT_LINES] == 1.0
    upd = dict(zip(layout.UPD_FIELDS, kernels.pack_update(cfg), strict=True))
    assert upd == {"bl": 7.0, "um": 1.0, "dw_min": 0.001, "exact": 0.0}
    assert kernels.pack_update(rpu.floating_point())[kernels.UPD_EXACT] == 1.0


def test_pack_refuses_a_missing_or_unknown_field() -> None:
    with pytest.raises(ValueError, match=r"packed fields \['a'\] do not match the layout"):
        layout._pack(("a", "b"), {"a": 1.0})
    with pytest.raises(ValueError, match=r"do not match the layout \['a'\]"):
        layout._pack(("a",), {"a": 1.0, "c": 2.0})


def test_tile_kernel_arrays_are_live_and_dense_layer_orients_the_read_copy() -> None:
    tile = AnalogTile(3, 4, rpu.gokmen_vlasov_2016(), rng=np.random.default_rng(0))
    ka = tile.kernel_arrays()
    assert ka.dp[kernels.DP_USE_ATT] == 0.0
    tile.set_attenuation(np.full((3, 4), 0.5))
    assert ka.dp[kernels.DP_USE_ATT] == 1.0  # the same array, changed in place
    np.testing.assert_array_equal(ka.upd, kernels.pack_update(tile.config))
    x, d = np.zeros(4), np.zeros(3)
    row = kernels.dense_layer(ka, act=kernels.ACT_TANH, x=x, d=d)
    assert not row.col_major and row.wread is ka.wread and row.x is x and row.d is d
    tile.set_read_order("F")
    col = kernels.dense_layer(tile.kernel_arrays(), act=kernels.ACT_NONE, x=x, d=d)
    assert col.col_major and col.wread.flags.c_contiguous and col.wread.shape == (4, 3)
    assert col.y.shape == (3,) and col.z.shape == (4,)
