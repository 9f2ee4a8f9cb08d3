"""invrcodec's Adam is torch.optim.Adam's fused update, without torch.optim's import of dynamo."""

from __future__ import annotations

import torch

from invrcodec.net.adam import Adam


def _train(make: type, scaled: bool) -> tuple[list[torch.Tensor], object]:
    torch.manual_seed(0)
    params = [torch.randn(3, 5, requires_grad=True), torch.randn(7, requires_grad=True)]
    opt = make(params, lr=1e-2) if make is Adam else make(params, lr=1e-2, fused=True)
    scaler = torch.amp.GradScaler("cpu", enabled=scaled, init_scale=1024.0)
    for i in range(6):
        opt.param_groups[0]["lr"] = 1e-2 / (i + 1)  # as fit's schedule sets it
        loss = sum(((p - 0.5) ** 2).sum() * (i + 1) for p in params)
        for p in params:
            p.grad = None
        scaler.scale(loss).backward()
        if i == 2:
            params[1].grad = None  # a tensor without a gradient this step is left alone
        scaler.step(opt)
        scaler.update()
    return params, opt


def test_the_update_is_torch_adams_bit_for_bit() -> None:
    for scaled in (False, True):
        ours, opt = _train(Adam, scaled)
        theirs, ref = _train(torch.optim.Adam, scaled)
        for a, b in zip(ours, theirs):
            assert torch.equal(a, b)
        for a, b in zip(ours, theirs):
            for key in ("step", "exp_avg", "exp_avg_sq"):
                assert torch.equal(opt.state[a][key], ref.state[b][key])  # type: ignore[attr-defined]
        assert float(opt.state[ours[1]]["step"]) == 5  # type: ignore[attr-defined]
