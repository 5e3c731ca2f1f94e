"""iBOT in PyTorch, written from shared/ibot-spec.md, trained on exactly what `wgrad pretrain` feeds
its step (dump.ts): the same initial student, the same crops and masks, step by step. It separates
"our implementation learns differently" from "this recipe learns this little": a replay that tracks
wgrad's k-NN curve clears the step, the optimizer and the EMA; one that learns more points at them.
Recipe flags override the dumped config's schedules, so recipes can be searched at PyTorch's speed.

  python3 scripts/replay/replay.py DUMP_DIR [--lr 4e-3 --momentum 0.98 --momentum-end 0.98 ...]

Needs Debian's python3-torch and libopenblas0-pthread (without it PyTorch falls back to a reference
BLAS several times slower). Prints the teacher's and the student's k-NN at --eval steps.
"""
import argparse
import json
import math
import time

import numpy as np
import torch
import torch.nn.functional as F

ap = argparse.ArgumentParser()
ap.add_argument("dump")
ap.add_argument("--steps", type=int, default=0, help="steps to run (default: the dumped run's)")
ap.add_argument("--eval", default="", help="comma-separated steps after which to run k-NN (default: each third of the run)")
ap.add_argument("--seed", type=int, default=0, help="torch's seed (stochastic depth)")
ap.add_argument("--lr", type=float, help="peak learning rate per 256 images")
ap.add_argument("--warmup-steps", type=int)
ap.add_argument("--momentum", type=float, help="teacher EMA momentum at the start")
ap.add_argument("--momentum-end", type=float, help="where its cosine ends (1 official)")
ap.add_argument("--teacher-temp", type=float, help="teacher [CLS] and patch temperature after warm-up")
ap.add_argument("--warmup-teacher-temp", type=float)
ap.add_argument("--temp-warmup-steps", type=int)
ap.add_argument("--freeze-steps", type=int, help="steps with the prototypes frozen")
ap.add_argument("--drop-path", type=float)
ap.add_argument("--lambda2", type=float, help="weight of the masked-patch loss")
args = ap.parse_args()
torch.set_num_threads(2)
torch.manual_seed(args.seed)

D = args.dump
meta = json.load(open(f"{D}/meta.json"))
c = meta["config"]
G, L, B = 2, c["localCrops"], c["batchSize"]
S, s = 28, c["localSize"]
p = c["patchSize"]
grid, width, heads, depth, K = 28 // p, c["width"], c["heads"], c["depth"], c["outDim"]
N = grid * grid
total = meta["steps"]
steps = args.steps or total
evals = [int(x) for x in args.eval.split(",")] if args.eval else [total // 3, 2 * total // 3, total]


def pick(flag, value):
    return value if flag is None else flag


def cosine(base, final, n, warm=0):
    """utils.cosine_scheduler in steps: linspace(0, base, warm), then cosine from base towards final."""
    head = list(np.linspace(0, base, warm)) if warm else []
    rest = n - warm
    return head + [final + 0.5 * (base - final) * (1 + math.cos(math.pi * i / rest)) for i in range(rest)]


ipe = meta["train"] // B
warm = pick(args.warmup_steps, round(c["warmupEpochs"] * ipe))
temp_warm = pick(args.temp_warmup_steps, round(c["warmupTeacherTempEpochs"] * ipe))
frozen = pick(args.freeze_steps, round(c["freezeLastLayer"] * ipe))


def temperatures(t0, t1):
    return (list(np.linspace(t0, t1, temp_warm)) if temp_warm else []) + [t1] * (total - temp_warm)


sched = {
    "lr": cosine(pick(args.lr, c["lr"]) * B / 256, c["minLr"], total, warm),
    "weightDecay": cosine(c["weightDecay"], c["weightDecayEnd"], total),
    "momentum": cosine(pick(args.momentum, c["momentumTeacher"]), pick(args.momentum_end, c["momentumTeacherEnd"]), total),
    "teacherTemp": temperatures(pick(args.warmup_teacher_temp, c["warmupTeacherTemp"]), pick(args.teacher_temp, c["teacherTemp"])),
    "teacherPatchTemp": temperatures(pick(args.warmup_teacher_temp, c["warmupTeacherPatchTemp"]), pick(args.teacher_temp, c["teacherPatchTemp"])),
    "lastLayerStep": [max(0, i + 1 - frozen) for i in range(total)],
}
overridden = any(v is not None for k, v in vars(args).items() if k not in ("dump", "steps", "eval", "seed", "drop_path", "lambda2"))
if not overridden and c["temperatureWarmup"] == "iteration":
    for k, ours in meta["schedules"].items():
        assert np.allclose(ours, sched[k], rtol=1e-12, atol=1e-15), f"schedule {k} differs from wgrad's"
    print("schedules: identical to wgrad's")

raw = np.fromfile(f"{D}/init.bin", dtype=np.float32)
params, off = {}, 0
for e in meta["paths"]:
    n = int(np.prod(e["shape"]))
    params[e["path"]] = torch.tensor(raw[off:off + n].reshape(e["shape"]))
    off += n
assert off == raw.size, "init.bin does not match meta.json"
student = {k: v.clone().requires_grad_(True) for k, v in params.items()}
teacher = {k: v.clone() for k, v in params.items() if k != "maskedEmbed"}


def layer_norm(x, P, name):
    return F.layer_norm(x, (x.shape[-1],), P[f"{name}.g"], P[f"{name}.b"], 1e-6)


def linear(x, P, name):
    return x @ P[f"{name}.w"] + P[f"{name}.b"]


def positions(P, g):
    """The positional embedding for a g×g grid: bicubic with the official scale factor (g + 0.1)/grid."""
    pe = P["backbone.posEmbed"]
    if g == grid:
        return pe
    patch = pe[:, 1:].reshape(1, grid, grid, width).permute(0, 3, 1, 2)
    patch = F.interpolate(patch, scale_factor=((g + 0.1) / grid, (g + 0.1) / grid), mode="bicubic", align_corners=False)
    return torch.cat([pe[:, :1], patch.permute(0, 2, 3, 1).reshape(1, g * g, width)], 1)


def backbone(x, P, mask=None, drop=0.0):
    """The ViT (spec §1.1): patches, mask token, [CLS] and positions, pre-norm blocks with per-sample stochastic depth."""
    b, _, h, _ = x.shape
    g = h // p
    t = linear(x.reshape(b, 1, g, p, g, p).permute(0, 2, 4, 1, 3, 5).reshape(b, g * g, p * p), P, "backbone.patchEmbed")
    if mask is not None:
        m = mask.unsqueeze(-1)
        t = t * (1 - m) + P["maskedEmbed"] * m
    t = torch.cat([P["backbone.clsToken"].expand(b, 1, width), t], 1) + positions(P, g)
    hd = width // heads
    for i in range(depth):
        rate = drop * i / max(1, depth - 1)
        keep = (lambda y: y * torch.bernoulli(torch.full((b, 1, 1), 1 - rate)) / (1 - rate)) if rate > 0 else (lambda y: y)
        pre = f"backbone.blocks.{i}"
        q, k, v = linear(layer_norm(t, P, f"{pre}.norm1"), P, f"{pre}.qkv").reshape(b, -1, 3, heads, hd).permute(2, 0, 3, 1, 4)
        o = (((q @ k.transpose(-2, -1)) * hd ** -0.5).softmax(-1) @ v).transpose(1, 2).reshape(b, -1, width)
        t = t + keep(linear(o, P, f"{pre}.proj"))
        t = t + keep(linear(F.gelu(linear(layer_norm(t, P, f"{pre}.norm2"), P, f"{pre}.fc1")), P, f"{pre}.fc2"))
    return layer_norm(t, P, "backbone.norm")


def head(z, P):
    """The iBOT head (spec §1.3): 3-layer MLP, L2-normalised bottleneck, unit-norm prototypes."""
    h = F.gelu(linear(F.gelu(linear(z, P, "head.mlp1")), P, "head.mlp2"))
    return F.normalize(linear(h, P, "head.mlp3"), dim=-1) @ F.normalize(P["head.lastLayer.v"], dim=0)


bank = torch.from_numpy(np.fromfile(f"{D}/bank.bin", dtype=np.float32).reshape(-1, 1, 28, 28))
queries = torch.from_numpy(np.fromfile(f"{D}/queries.bin", dtype=np.float32).reshape(-1, 1, 28, 28))
bank_labels = torch.from_numpy(np.fromfile(f"{D}/bank_labels.bin", dtype=np.uint8).astype(np.int64))
query_labels = torch.from_numpy(np.fromfile(f"{D}/query_labels.bin", dtype=np.uint8).astype(np.int64))


@torch.no_grad()
def knn(P, k=20, T=0.07):
    """Weighted k-NN (DINO's) on L2-normalised final-norm [CLS] features, as wgrad's knnClassify."""
    f = lambda x: F.normalize(torch.cat([backbone(x[i:i + 500], P)[:, 0] for i in range(0, len(x), 500)]), dim=-1)
    top, idx = (f(queries) @ f(bank).T).topk(k, dim=1)
    votes = torch.zeros(len(queries), 10).scatter_add_(1, bank_labels[idx], (top / T).exp())
    return 100 * (votes.argmax(1) == query_labels).float().mean().item()


center, center2 = torch.zeros(1, K), torch.zeros(1, 1, K)
decayed = [k for k, v in student.items() if v.dim() > 1]
opt = torch.optim.AdamW([{"params": [student[k] for k in decayed]}, {"params": [v for k, v in student.items() if v.dim() <= 1], "weight_decay": 0.0}], lr=0)
drop = pick(args.drop_path, c["dropPath"])
lambda2 = pick(args.lambda2, c["lambda2"])
per_step = G * B * S * S + L * B * s * s + G * B * N
batches = open(f"{D}/batches.bin", "rb")
print(f"random init: teacher {knn(teacher):.2f}", flush=True)
t0 = time.time()
for it in range(steps):
    a = torch.from_numpy(np.frombuffer(batches.read(per_step * 4), dtype=np.float32).copy())
    glob = a[:G * B * S * S].reshape(G * B, 1, S, S)
    loc = a[G * B * S * S:G * B * S * S + L * B * s * s].reshape(L * B, 1, s, s)
    masks = a[G * B * S * S + L * B * s * s:].reshape(G * B, N)
    opt.param_groups[0]["weight_decay"] = sched["weightDecay"][it]
    for group in opt.param_groups:
        group["lr"] = sched["lr"][it]
    with torch.no_grad():
        tz = head(backbone(glob, teacher), teacher)
    sg = head(backbone(glob, student, masks, drop), student)
    sl = head(backbone(loc, student, None, drop)[:, :1], student)[:, 0]
    # The iBOT loss (spec §4): [CLS] across views, masked patches within a view.
    tc = F.softmax((tz[:, 0] - center) / sched["teacherTemp"][it], -1).chunk(G)
    tp = F.softmax((tz[:, 1:] - center2) / sched["teacherPatchTemp"][it], -1).chunk(G)
    sc = (torch.cat([sg[:, 0], sl]) / 0.1).chunk(G + L)
    sp = (sg[:, 1:] / 0.1).chunk(G)
    mk = masks.chunk(G)
    cls, patch, terms = 0, 0, 0
    for q in range(G):
        for v in range(G + L):
            if v == q:
                ce = (-tp[q] * F.log_softmax(sp[v], -1)).sum(-1)
                patch = patch + ((ce * mk[v]).sum(-1) / mk[v].sum(-1).clamp(min=1.0)).mean()
            else:
                cls = cls + (-tc[q] * F.log_softmax(sc[v], -1)).sum(-1).mean()
                terms += 1
    cls, patch = cls / terms, patch / G
    loss = c["lambda1"] * cls + lambda2 * patch
    with torch.no_grad():
        center = 0.9 * center + 0.1 * tz[:, 0].sum(0, keepdim=True) / (G * B)
        center2 = 0.9 * center2 + 0.1 * tz[:, 1:].mean(1).sum(0, keepdim=True) / (G * B)
    opt.zero_grad()
    loss.backward()
    for v in student.values():  # utils.clip_gradients: per tensor
        v.grad.mul_(min(1.0, c["clipGrad"] / (v.grad.norm().item() + 1e-6)))
    if sched["lastLayerStep"][it] == 0:
        student["head.lastLayer.v"].grad = None  # frozen: no step, no decay (its AdamW step count waits)
    opt.step()
    with torch.no_grad():
        m = sched["momentum"][it]
        for k in teacher:
            teacher[k].mul_(m).add_(student[k].detach(), alpha=1 - m)
    if it % 50 == 0 or it == steps - 1:
        print(f"step {it}: loss {loss.item():.4f} (cls {cls.item():.4f}, patch {patch.item():.4f}), {(it + 1) * B / (time.time() - t0):.0f} images/s", flush=True)
    if it + 1 in evals:
        print(f"after {(it + 1) * B} images: teacher {knn(teacher):.2f} student {knn(student):.2f}", flush=True)
