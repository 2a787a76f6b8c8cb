# Generates learn/testdata/torch_golden.json: PyTorch (float64) logits of
# cnn:mnist and mlp:5,3 for fixed weights and inputs, to check that the Go
# models use PyTorch's parameter layouts.
import json, numpy as np, torch, torch.nn as nn, torch.nn.functional as F
torch.manual_seed(7)
torch.set_default_dtype(torch.float64)
class CNN(nn.Module):
    def __init__(s):
        super().__init__(); s.c1 = nn.Conv2d(1, 8, 5); s.c2 = nn.Conv2d(8, 16, 5); s.d = nn.Linear(256, 10)
    def forward(s, x):
        x = F.max_pool2d(F.relu(s.c1(x.view(-1, 1, 28, 28))), 2)
        x = F.max_pool2d(F.relu(s.c2(x)), 2)
        return s.d(x.flatten(1))
out = {}
cnn = CNN()
x = torch.randn(3, 784)
out["cnn"] = {"spec": "cnn:mnist", "dim": 784, "classes": 10,
  "params": torch.cat([p.detach().flatten() for p in [cnn.c1.weight, cnn.c1.bias, cnn.c2.weight, cnn.c2.bias, cnn.d.weight, cnn.d.bias]]).tolist(),
  "x": x.flatten().tolist(), "logits": cnn(x).detach().flatten().tolist()}
mlp = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3), nn.ReLU(), nn.Linear(3, 4))
x = torch.randn(4, 6)
out["mlp"] = {"spec": "mlp:5,3", "dim": 6, "classes": 4,
  "params": torch.cat([p.detach().flatten() for p in mlp.parameters()]).tolist(),
  "x": x.flatten().tolist(), "logits": mlp(x).detach().flatten().tolist()}
json.dump(out, open("/work/wt-data/learn/testdata/torch_golden.json", "w"))
