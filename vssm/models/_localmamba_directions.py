"""LocalMamba's searched scan directions: one direction list per layer (LocalVim) or block (LocalVMamba), as data.

Each entry is the top-4 of a layer's search weights in the canonical order `h, h_flip, v, v_flip, w2, w2_flip, w7,
w7_flip`; position k in a layer's list is the layer's parameter slot k (`A_log_k`, `conv1d_k`, ... in LocalVim; row
block k of the stacked SS2D parameters in LocalVMamba). Values from hunto/LocalMamba @ 75e5d1f
(`classification/lib/models/local_vim.py`, `local_vmamba.py`), read from the source by a parser.
LocalVMamba lists are per block over all stages (T: 2 + 2 + 9 + 2, S: 2 + 2 + 27 + 2).
"""

from __future__ import annotations

Directions = tuple[tuple[str, ...], ...]

# The canonical choices of the search space (the names `scans.Windowed` parses; any wK works too).
CHOICES = ("h", "h_flip", "v", "v_flip", "w2", "w2_flip", "w7", "w7_flip")

# LocalVim-T (with and without the middle class token). Also LocalVim-S: see LOCAL_VIM_SMALL.
LOCAL_VIM_TINY: Directions = (
    ("h", "v_flip", "w7", "w7_flip"),  # 0
    ("h_flip", "w2_flip", "w7", "w7_flip"),  # 1
    ("h", "h_flip", "v", "w7"),  # 2
    ("h", "h_flip", "v", "v_flip"),  # 3
    ("h", "h_flip", "v", "v_flip"),  # 4
    ("h", "h_flip", "v", "v_flip"),  # 5
    ("h_flip", "v", "v_flip", "w7"),  # 6
    ("h_flip", "v", "v_flip", "w2_flip"),  # 7
    ("h", "h_flip", "v", "v_flip"),  # 8
    ("h", "h_flip", "v", "v_flip"),  # 9
    ("h", "v", "v_flip", "w2"),  # 10
    ("h", "v", "v_flip", "w2_flip"),  # 11
    ("h", "h_flip", "v_flip", "w7"),  # 12
    ("h_flip", "v", "v_flip", "w2"),  # 13
    ("h", "h_flip", "v", "v_flip"),  # 14
    ("h", "v", "w2", "w2_flip"),  # 15
    ("v", "v_flip", "w2", "w7"),  # 16
    ("h", "h_flip", "v", "w2"),  # 17
    ("h", "h_flip", "w2_flip", "w7"),  # 18
    ("v", "v_flip", "w2", "w2_flip"),  # 19
)

# LocalVim-S: the original defines `local_vim_small` twice, first with LocalVim-T's searched list, then with the
# uniform list below (which wins in Python and timm). The authors' own detection and segmentation configs load the
# released LocalVim-S weights into the searched list, so that is ours (model_cards/localmamba.md says why).
LOCAL_VIM_SMALL: Directions = LOCAL_VIM_TINY

# The un-searched baseline: every layer h, h_flip, w2, w2_flip (the original's `local_vim_tiny_wo_search` and its
# second `local_vim_small`).
LOCAL_VIM_UNIFORM: Directions = (("h", "h_flip", "w2", "w2_flip"),) * 20

LOCAL_VSSM_TINY: Directions = (
    ("h", "h_flip", "w7", "w7_flip"),  # 0
    ("h_flip", "v_flip", "w2", "w2_flip"),  # 1
    ("h_flip", "v_flip", "w2_flip", "w7"),  # 2
    ("h_flip", "v", "v_flip", "w2"),  # 3
    ("h", "h_flip", "v_flip", "w2_flip"),  # 4
    ("h_flip", "v_flip", "w2", "w2_flip"),  # 5
    ("h", "w2_flip", "w7", "w7_flip"),  # 6
    ("h", "h_flip", "v", "v_flip"),  # 7
    ("h", "v_flip", "w7", "w7_flip"),  # 8
    ("h_flip", "v", "w2", "w7_flip"),  # 9
    ("v", "v_flip", "w2", "w7_flip"),  # 10
    ("h", "h_flip", "v_flip", "w2_flip"),  # 11
    ("v_flip", "w2_flip", "w7", "w7_flip"),  # 12
    ("h_flip", "v_flip", "w2_flip", "w7_flip"),  # 13
    ("h_flip", "v", "w7", "w7_flip"),  # 14
)

LOCAL_VSSM_SMALL: Directions = (
    ("h", "v", "v_flip", "w7_flip"),  # 0
    ("h", "h_flip", "v", "w7"),  # 1
    ("h_flip", "v", "v_flip", "w7"),  # 2
    ("h_flip", "v", "w2_flip", "w7"),  # 3
    ("h_flip", "v", "w2_flip", "w7"),  # 4
    ("h_flip", "v_flip", "w2", "w7_flip"),  # 5
    ("h_flip", "v", "v_flip", "w7"),  # 6
    ("h", "v", "v_flip", "w7"),  # 7
    ("h", "v", "v_flip", "w7"),  # 8
    ("h", "v", "v_flip", "w7_flip"),  # 9
    ("h", "h_flip", "v", "v_flip"),  # 10
    ("h", "v", "v_flip", "w2"),  # 11
    ("v", "v_flip", "w2_flip", "w7"),  # 12
    ("h", "h_flip", "v", "w2"),  # 13
    ("h_flip", "v", "v_flip", "w7_flip"),  # 14
    ("h", "h_flip", "v", "v_flip"),  # 15
    ("h", "v", "v_flip", "w7_flip"),  # 16
    ("h", "v", "v_flip", "w7_flip"),  # 17
    ("h", "h_flip", "v_flip", "w7"),  # 18
    ("h_flip", "v_flip", "w2_flip", "w7"),  # 19
    ("h_flip", "v", "v_flip", "w7_flip"),  # 20
    ("v", "v_flip", "w7", "w7_flip"),  # 21
    ("h", "v", "v_flip", "w7_flip"),  # 22
    ("h_flip", "v", "v_flip", "w2"),  # 23
    ("h", "v", "v_flip", "w2_flip"),  # 24
    ("h", "h_flip", "v", "w7"),  # 25
    ("h", "h_flip", "w7", "w7_flip"),  # 26
    ("h", "v_flip", "w2", "w2_flip"),  # 27
    ("h", "v_flip", "w2", "w7"),  # 28
    ("h", "v", "v_flip", "w7_flip"),  # 29
    ("h_flip", "v", "w2_flip", "w7"),  # 30
    ("h_flip", "v_flip", "w7", "w7_flip"),  # 31
    ("h", "v", "w7", "w7_flip"),  # 32
)

# The tiny test models (the golden fixtures' lists): LocalVim on a 7 × 7 (or 10 × 10) grid, where w2 pads and w7 is
# one window (or pads); LocalVMamba at 64 px, where every block's w7 pads (grids 16, 8, 4, 2).
TEST_LOCAL_VIM: Directions = (("h", "v_flip", "w2", "w2_flip"), ("h_flip", "v", "w7", "w7_flip")) * 2
TEST_LOCAL_VSSM: Directions = (
    ("h", "v", "w7_flip", "w2"),
    ("v_flip", "w2", "v", "w7"),
    ("w7", "h_flip", "w2_flip", "v"),
    ("h_flip", "w2", "h", "w7_flip"),
    ("w7", "v_flip", "w7_flip", "h"),
)
