"""Times one CausalNL training step in PyTorch, as a reference for scripts/benchmark.py.

The public PyTorch code of the paper cannot run here as it is (it needs its
data files and a GPU-era PyTorch), so this script rebuilds, in plain PyTorch,
a step of the same cost: both branches with the public code's FashionMNIST
network shapes (q(Z|X,Y) and p(Y~|Y,X): a 1x1 convolution of x beside a
label plane, four stride-2 3x3 convolutions of 32/64/128/256 maps with batch
norm and leaky ReLU; p(X|Y,Z): a dense layer to 2x2x256, transposed
convolutions to 128/64/32 maps and a final 32-map one, then a 4x4 convolution
to 28x28), the default objective's terms, co-teaching's small-loss
cross-entropy, and one Adam update of all eight networks; batch 128, z_dim
25, random inputs. Classifiers: `small_cnn`'s shape (four stride-2 3x3
convolutions, 32/64/128/256 maps) or ResNet-18 with torchvision's stem (7x7
stride-2 convolution and 3x3 max-pool).

PyTorch is not one of the project's dependencies; in a separate environment:

    python -m venv /tmp/torch && /tmp/torch/bin/pip install torch numpy
    /tmp/torch/bin/python scripts/reference_step_torch.py --classifier small_cnn --steps 40

It prints the median milliseconds per step over `--steps` steps after 3
warm-up steps, on 2 threads (`--threads`).
"""

import argparse
import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

BATCH, CLASSES, Z_DIM = 128, 10, 25


def conv_bn_act(maps_in, maps_out, transpose=False, output_padding=0):
    if transpose:
        conv = nn.ConvTranspose2d(maps_in, maps_out, 3, 2, 1, output_padding=output_padding)
    else:
        conv = nn.Conv2d(maps_in, maps_out, 3, 2, 1)
    return nn.Sequential(conv, nn.BatchNorm2d(maps_out), nn.LeakyReLU())


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(conv_bn_act(1, 32), conv_bn_act(32, 64), conv_bn_act(64, 128),
                                      conv_bn_act(128, 256))
        self.logits = nn.Linear(256, CLASSES)

    def forward(self, x):
        return self.logits(self.features(x).mean((2, 3)))


class BasicBlock(nn.Module):
    def __init__(self, maps_in, maps_out, stride):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(maps_in, maps_out, 3, stride, 1, bias=False), nn.BatchNorm2d(maps_out),
                                  nn.ReLU(), nn.Conv2d(maps_out, maps_out, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(maps_out))
        self.shortcut = nn.Sequential()
        if stride != 1 or maps_in != maps_out:
            self.shortcut = nn.Sequential(nn.Conv2d(maps_in, maps_out, 1, stride, bias=False),
                                          nn.BatchNorm2d(maps_out))

    def forward(self, x):
        return F.relu(self.body(x) + self.shortcut(x))


class ResNet18(nn.Module):
    def __init__(self):
        super().__init__()
        layers = [nn.Conv2d(1, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
        maps_in = 64
        for stage, maps in enumerate((64, 128, 256, 512)):
            layers += [BasicBlock(maps_in, maps, 1 if stage == 0 else 2), BasicBlock(maps, maps, 1)]
            maps_in = maps
        self.features = nn.Sequential(*layers)
        self.logits = nn.Linear(512, CLASSES)

    def forward(self, x):
        return self.logits(self.features(x).mean((2, 3)))


class ImageAndLabel(nn.Module):
    """q(Z|X,Y) (outputs 2 z_dim) or p(Y~|Y,X) (outputs the classes)."""

    def __init__(self, outputs):
        super().__init__()
        self.label_plane = nn.Linear(CLASSES, 28 * 28)
        self.image = nn.Conv2d(1, 1, 1)
        self.features = nn.Sequential(conv_bn_act(2, 32), conv_bn_act(32, 64), conv_bn_act(64, 128),
                                      conv_bn_act(128, 256))
        self.out = nn.Linear(256 * 4, outputs)

    def forward(self, x, y):
        h = torch.cat([self.image(x), self.label_plane(y).view(-1, 1, 28, 28)], 1)
        return self.out(self.features(h).flatten(1))


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.dense = nn.Linear(Z_DIM + CLASSES, 256 * 4)
        self.features = nn.Sequential(conv_bn_act(256, 128, True, 1), conv_bn_act(128, 64, True, 1),
                                      conv_bn_act(64, 32, True, 1), conv_bn_act(32, 32, True, 0),
                                      nn.Conv2d(32, 1, 4))

    def forward(self, z, y):
        return torch.sigmoid(self.features(self.dense(torch.cat([z, y], 1)).view(-1, 256, 2, 2)))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--classifier", choices=("small_cnn", "resnet18_imagenet"), default="small_cnn")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    classifier = SmallCNN if args.classifier == "small_cnn" else ResNet18
    branches = [nn.ModuleList([classifier(), ImageAndLabel(2 * Z_DIM), Decoder(), ImageAndLabel(CLASSES)])
                for _ in range(2)]
    optimizer = torch.optim.Adam([p for branch in branches for p in branch.parameters()], 1e-3)
    x, noisy = torch.rand(BATCH, 1, 28, 28), torch.randint(0, CLASSES, (BATCH,))

    def step():
        outputs = []
        for classify, encode, decode, noisy_label in branches:
            logits = classify(x)
            y = F.gumbel_softmax(logits, tau=1.0)
            mean, log_variance = encode(x, y).chunk(2, 1)
            x1 = decode(mean + torch.randn_like(mean) * (0.5 * log_variance).exp(), y)
            elbo = (0.1 * (x - x1).abs().sum((1, 2, 3))
                    + 6.4 * F.cross_entropy(noisy_label(x1, y), noisy, reduction="none")
                    + 6.4e-4 * (F.softmax(logits, 1) * F.log_softmax(logits, 1)).sum(1)
                    - 0.32 * (1 + log_variance - mean**2 - log_variance.exp()).sum(1))
            outputs.append((logits, elbo.mean()))
        keep = int(0.55 * BATCH)
        small = [F.cross_entropy(logits, noisy, reduction="none").argsort()[:keep] for logits, _ in outputs]
        loss = (outputs[0][1] + outputs[1][1] + F.cross_entropy(outputs[0][0][small[1]], noisy[small[1]])
                + F.cross_entropy(outputs[1][0][small[0]], noisy[small[0]]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for _ in range(3):
        step()
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        step()
        times.append(1000 * (time.perf_counter() - start))
    print(f"PyTorch {torch.__version__}, {args.classifier}, {args.threads} threads: "
          f"{np.median(times):.1f} ms per step (median of {args.steps}), {1000 * BATCH / np.median(times):.1f} ex/s")


if __name__ == "__main__":
    main()
