#!/usr/bin/python3
"""Writes a small scripted CNN for tests/experiments/sweep_test.cc.

    /usr/bin/python3 tests/experiments/tiny_torchscript_net.py OUT.pt [SEED]

The model reads 1x28x28 images (Fashion-MNIST) and gives 10 logits: conv-bn-relu and a
max-pool, one residual block (conv-bn-relu, conv-bn, add, relu), adaptive average pooling,
flatten and a Linear, all layers the importer supports. Weights come from torch.manual_seed(SEED)
(default 0), so another seed gives another file.
"""

import sys

import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + x)


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.block = Block(8)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = self.pool(self.relu(self.bn(self.conv(x))))
        x = self.block(x)
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


def main():
    torch.manual_seed(int(sys.argv[2]) if len(sys.argv) > 2 else 0)
    torch.jit.save(torch.jit.script(TinyNet().eval()), sys.argv[1])


if __name__ == "__main__":
    main()
