"""torchvision's DataLoader rate on the files //benchmarks:data_loading generates,
for the ratio quantbench's loader is compared by.

Run after the benchmark: /usr/bin/python3 tools/torchvision_loader_rate.py [QB_BENCH_DIR]
Prints images per second for the ImageNet evaluation pipeline with 1 and 2 workers.
"""
import sys
import time

import torch
import torchvision
from torchvision import transforms

root = (sys.argv[1] if len(sys.argv) > 1 else "/tmp/qb-bench-data") + "/imagenet/val"
torch.set_num_threads(1)
pipeline = transforms.Compose([
    transforms.Resize(256),
    transforms.CenterCrop(224),
    transforms.ToTensor(),
    transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
])
dataset = torchvision.datasets.ImageFolder(root, pipeline)
for workers in (1, 2):
    loader = torch.utils.data.DataLoader(dataset, batch_size=32, num_workers=workers)
    for _ in loader:  # warm-up: worker start-up, file cache
        pass
    images, start = 0, time.perf_counter()
    for _ in range(3):
        for batch, _ in loader:
            images += batch.size(0)
    rate = images / (time.perf_counter() - start)
    print(f"torchvision imagenet eval pipeline, {workers} worker(s): {rate:.1f} images/s")
