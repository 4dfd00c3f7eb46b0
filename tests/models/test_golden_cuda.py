"""Every family on a GPU (Triton scan, cuDNN convolutions, CUDA attention) against the original code's outputs.

The golden fixtures' float32 rule (relative L2 <= 1e-5) with TF32 off, so that a GPU matmul or convolution rounds
like the CPU's; where the original's own float32 output is further than that from its float64 output (U-Mamba Enc:
1.3e-5), a GPU's other summation order may be too, up to twice that gap. With bf16 autocast the logits move by at
most 2e-2 plus four times what rounding only the input to bf16 moves them (test_timm_contract.py's rule).
"""

import importlib

import pytest
import torch

from upkeep import faithfulness

pytestmark = pytest.mark.gpu

@pytest.fixture
def exact_fp32():
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


@pytest.mark.parametrize("name", list(faithfulness.fixture_models()))
def test_gpu_matches_the_original_outputs(name: str, fixtures_dir, exact_fp32) -> None:
    folder = fixtures_dir / name
    if not (folder / "meta.json").is_file():
        pytest.skip(f"no fixture {name} under {fixtures_dir}")
    fixture = faithfulness.load_fixture(folder)
    model = faithfulness.fixture_models()[name].create(fixture).eval()
    family = importlib.import_module(type(model).__module__)
    model.load_state_dict(family.checkpoint_filter_fn(fixture.checkpoint, model), strict=True)
    model.cuda()
    x = fixture.input.cuda()
    with torch.no_grad():
        fp32 = faithfulness.rel_l2(model(x).cpu(), fixture.output)
        sensitivity = faithfulness.rel_l2(model(x.bfloat16().float()).cpu(), fixture.output)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            bf16 = faithfulness.rel_l2(model(x).float().cpu(), fixture.output)
    bound = max(faithfulness.RTOL_FP32, 2 * faithfulness.rel_l2(fixture.output, fixture.output_fp64))
    assert fp32 <= bound, f"{name}: float32 on the GPU differs from the original by {fp32:.2e} (bound {bound:.1e})"
    amp_bound = 2e-2 + 4 * sensitivity
    assert bf16 <= amp_bound, f"{name}: bf16 autocast differs from the original by {bf16:.2e} (bound {amp_bound:.1e})"
