#!/usr/bin/python3
"""Writes TorchScript files for tests/models/torchscript_import_test.cc.

    /usr/bin/python3 tests/models/torchscript_models.py OUTDIR

For each zoo architecture (the torchvision models, and the two small-image ResNets
defined in tests/fixtures/make_zoo_fixtures.py), with every state_dict tensor filled
from the seeded generator as make_zoo_fixtures.py does, in OUTDIR:
  <case>.scripted.pt  torch.jit.save(torch.jit.script(model))
  <case>.traced.pt    torch.jit.save(torch.jit.trace(model, x[:1])): traced at batch 1,
                      imported and run at batch 2
  <case>.state.pt     torch.save(model.state_dict())
  <case>.input.pt     {"tensor": x}, a batch of 2
  <case>.logits.pt    {"tensor": model(x)}
and models the importer must refuse, each scripted: control_flow.pt (an `if` on a
tensor's value), identity.traced.pt (a traced nn.Identity), functional.{scripted,traced}.pt (a CNN in the
functional style, see FunctionalNet), unsupported_op.pt (torch.sin in a user module), unsupported_layer.pt
(nn.GELU), parameter_in_code.pt (a parameter read by functional code).
"""

import os
import sys

import torch
import torchvision
from torch import nn
from torch.nn import functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "fixtures"))
import make_zoo_fixtures  # noqa: E402

CASES = {
    "resnet18": (lambda: torchvision.models.resnet18(), (2, 3, 64, 64)),
    "resnet34": (lambda: torchvision.models.resnet34(), (2, 3, 64, 64)),
    "resnet50": (lambda: torchvision.models.resnet50(), (2, 3, 64, 64)),
    "mobilenet_v2": (lambda: torchvision.models.mobilenet_v2(), (2, 3, 64, 64)),
    "cifar_resnet18": (lambda: make_zoo_fixtures.cifar_resnet18(10), (2, 3, 32, 32)),
    "fmnist_resnet8": (lambda: make_zoo_fixtures.fmnist_resnet8(10), (2, 1, 28, 28)),
}


class ControlFlow(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        y = self.conv(x)
        if bool(y.sum() > 0):
            y = torch.relu(y)
        return y


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return torch.sin(self.conv(x))


class UnsupportedOp(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = Block()

    def forward(self, x):
        return self.block(x)


class UnsupportedLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.act = nn.ELU()

    def forward(self, x):
        return self.act(self.conv(x))


class FunctionalNet(nn.Module):
    """A user's CNN in the functional style: F.max_pool2d, F.avg_pool2d, F.dropout,
    torch.tanh and nn.Tanh, and a view to sizes read from the input."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.act = nn.Tanh()
        self.fc = nn.Linear(16 * 7 * 7, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = self.act(self.conv2(x))
        x = F.avg_pool2d(x, kernel_size=2, stride=2)
        x = torch.tanh(x)
        x = x.view(x.size(0), -1)
        x = F.dropout(x, p=0.25, training=self.training)
        return self.fc(x)


class FactorizedGelu(nn.Module):
    """Inception-style 1x7 and 7x1 kernels with unequal strides and paddings, and GELU,
    which PyTorch 1.13 keeps in fp32."""

    def __init__(self):
        super().__init__()
        self.wide = nn.Conv2d(3, 8, (1, 7), padding=(0, 3))
        self.tall = nn.Conv2d(8, 8, (7, 1), stride=(2, 1), padding=(3, 0), dilation=(1, 2))
        self.act = nn.GELU()
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        x = self.act(self.tall(self.wide(x)))
        return self.fc(x.mean([2, 3]))


class WithIdentity(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.skip = nn.Identity()

    def forward(self, x):
        return self.skip(self.conv(x)).mean([2, 3])


class ParameterInCode(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x):
        return self.conv(x) * self.scale


def SequentialFlatten():
    """A top-level nn.Sequential (parameter names that start with a digit) ending in
    nn.Flatten, which PyTorch 1.13 FX runs in fp32."""
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 3))


class TwoFlattens(nn.Module):
    """x.flatten(1) and torch.flatten(x, 1): one TorchScript op, two ways FX quantizes."""
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        y = self.conv(x)
        a = y.flatten(1)
        # A traced file records lines, not columns: each form on its own line.
        b = torch.flatten(y, 1)
        return a + b


def write_case(out, name, make_model, input_shape):
    model = make_model().eval()
    state = model.state_dict()
    torch.manual_seed(make_zoo_fixtures.SEED)
    make_zoo_fixtures.deterministic_fill(state)
    x = torch.randn(input_shape)
    with torch.no_grad():
        logits = model(x)
        torch.jit.save(torch.jit.script(model), os.path.join(out, name + ".scripted.pt"))
        torch.jit.save(torch.jit.trace(model, x[:1]), os.path.join(out, name + ".traced.pt"))
    torch.save(model.state_dict(), os.path.join(out, name + ".state.pt"))
    torch.save({"tensor": x}, os.path.join(out, name + ".input.pt"))
    torch.save({"tensor": logits}, os.path.join(out, name + ".logits.pt"))


def write_user_case(out, name, cls, seed, input_shape):
    """A model of our own with weights from `seed`: scripted, traced with batch 1, its input
    and logits."""
    torch.manual_seed(seed)
    model = cls().eval()
    x = torch.randn(input_shape)
    with torch.no_grad():
        torch.jit.save(torch.jit.script(model), os.path.join(out, name + ".scripted.pt"))
        torch.jit.save(torch.jit.trace(model, x[:1]), os.path.join(out, name + ".traced.pt"))
        torch.save({"tensor": x}, os.path.join(out, name + ".input.pt"))
        torch.save({"tensor": model(x)}, os.path.join(out, name + ".logits.pt"))


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, (make_model, input_shape) in CASES.items():
        write_case(out, name, make_model, input_shape)
    for name, cls in [("control_flow", ControlFlow), ("unsupported_op", UnsupportedOp),
                      ("unsupported_layer", UnsupportedLayer),
                      ("parameter_in_code", ParameterInCode)]:
        torch.jit.save(torch.jit.script(cls().eval()), os.path.join(out, name + ".pt"))
    write_user_case(out, "functional", FunctionalNet, 2, (3, 1, 28, 28))
    write_user_case(out, "factorized", FactorizedGelu, 3, (2, 3, 12, 10))
    write_user_case(out, "sequential_flatten", SequentialFlatten, 4, (2, 3, 8, 8))
    write_user_case(out, "two_flattens", TwoFlattens, 5, (2, 3, 6, 6))
    # Tracing goes around nn.Identity, leaving a call without arguments that returns None.
    torch.manual_seed(1)
    identity = WithIdentity().eval()
    x = torch.randn(2, 3, 8, 8)
    torch.jit.save(torch.jit.trace(identity, x), os.path.join(out, "identity.traced.pt"))
    torch.save({"tensor": x}, os.path.join(out, "identity.input.pt"))
    torch.save({"tensor": identity(x).detach()}, os.path.join(out, "identity.logits.pt"))


if __name__ == "__main__":
    main()
