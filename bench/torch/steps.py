"""PyTorch as a peer in the benchmark (issue 17): the two training steps bench/run.ts times, written
the way PyTorch is usually written (nn.Modules, torch.optim), eager fp32, same shapes and work per
step as ours, on random weights and random inputs.

- `vit`: the ViT training step of bench/vitStep.ts. Batch 64 of 28x28x1 images, patch 4, width 96,
  depth 4, 3 heads, MLP 384, exact GELU, LayerNorm eps 1e-6, [CLS] -> Linear(96, 10), softmax
  cross-entropy, Adam (lr 1e-3, betas 0.9/0.999, eps 1e-8, no weight decay) on all 455 050 parameters.
- `ibot`: the iBOT training step of bench/ibotStep.ts at spec section 10 (PAPER_CONFIG with
  src/train/pretrain.ts's modelConfig): the same ViT backbone, a head 96 -> 512 -> 512 -> 64, L2
  normalised, onto 1024 unit-norm prototypes shared by [CLS] and patches; 2 global crops of 28 px and
  4 local crops of 12 px (3x3 grid, the positional embedding resized bicubically), batch 64. The
  teacher sees the global crops; the student the masked global crops (mask token) and the local crops,
  with stochastic depth 0.1; [CLS] loss across views and masked-patch loss with centring, backward,
  per-tensor gradient clipping at 3, AdamW (weight decay on tensors of rank > 1), EMA of the teacher,
  both centres, and the teacher's patch-token histogram and masked agreement that our step also
  returns. The schedule's values are those of bench/ibotStep.ts (lr 1e-4, weight decay 0.04, momentum
  0.996, teacher temperatures 0.04).

A long-lived worker, one command a line on stdin, one JSON line back on stdout:
  vit | ibot   one step (CUDA synchronised at the end): {"ms": 153.2, "loss": 2.31}
  info         {"torch": version, "device": name, "threads": n, "params": {...}, "blas": ...}
  quit         exits (so does the end of stdin)
The first step of each is a warm-up: that is the caller's business.

  python3 bench/torch/steps.py --device cpu|cuda [--threads N]

Runs on torch 1.13 (Debian's python3-torch; install libopenblas0-pthread too, else it falls back
to a reference BLAS several times slower) through 2.x. No torch.compile; on CUDA, TF32 is off.
"""
import argparse
import json
import math
import os
import platform
import sys
import time
import traceback

import torch
import torch.nn as nn
import torch.nn.functional as F

ap = argparse.ArgumentParser()
ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
ap.add_argument("--threads", type=int, default=0, help="CPU threads (torch.set_num_threads; 0: torch's default)")
args = ap.parse_args()

# Replies go to the real stdout; anything else printing to fd 1 (a library's C code, say) goes to stderr.
reply_out = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
sys.stdout = sys.stderr


def reply(obj):
    reply_out.write(json.dumps(obj) + "\n")
    reply_out.flush()


def fp32_only():
    """TF32 off for matmuls and cuDNN convolutions: plain fp32, as ours. Torch >= 2.9 has the
    per-backend fp32_precision settings and deprecates the allow_tf32 flags (mixing the two there
    can raise when one is read), so use whichever this torch has."""
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    if hasattr(matmul, "fp32_precision") and hasattr(cudnn, "conv"):
        matmul.fp32_precision = "ieee"
        cudnn.conv.fp32_precision = "ieee"
        return "fp32_precision ieee (matmul, cudnn conv)"
    matmul.allow_tf32 = False
    cudnn.allow_tf32 = False
    return "allow_tf32 False (matmul, cudnn)"


precision = "cpu fp32"
if args.device == "cuda":
    if not torch.cuda.is_available():
        sys.exit(f"CUDA is not available to PyTorch {torch.__version__}")
    precision = fp32_only()
if args.threads > 0:
    torch.set_num_threads(args.threads)
torch.manual_seed(0)
dev = torch.device(args.device)

B = 64
# The model (bench/vitStep.ts's BENCH_VIT; spec section 10's backbone).
IMG, PATCH, WIDTH, DEPTH, HEADS, MLP_RATIO = 28, 4, 96, 4, 3, 4
CLASSES = 10
# iBOT at spec section 10 (PAPER_CONFIG).
HIDDEN, BOTTLENECK, K = 512, 64, 1024
G, L, LOCAL = 2, 4, 12
DROP_PATH, CLIP, STUDENT_TEMP, CENTER_M = 0.1, 3.0, 0.1, 0.9
LR, WD, MOMENTUM, TEACHER_TEMP, TEACHER_PATCH_TEMP = 1e-4, 0.04, 0.996, 0.04, 0.04
VIT_PARAMS = 455_050  # ours: bench/vitStep.ts
IBOT_STUDENT_PARAMS = 864_864  # ours: initIbotState(PAPER_CONFIG).student (backbone, mask token, head)


def init_weights(m):
    """The official ViT's _init_weights: trunc_normal(0.02) linears with zero bias, unit LayerNorms."""
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02, a=-2.0, b=2.0)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


class Block(nn.Module):
    """Pre-norm block; `drop` is the per-sample stochastic-depth rate of each residual branch."""

    def __init__(self, d, heads, mlp_ratio):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(d, eps=1e-6)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d, eps=1e-6)
        self.fc1 = nn.Linear(d, mlp_ratio * d)
        self.fc2 = nn.Linear(mlp_ratio * d, d)

    def attn(self, x):
        b, n, d = x.shape
        hd = d // self.heads
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, hd).permute(2, 0, 3, 1, 4)
        a = ((q @ k.transpose(-2, -1)) * hd ** -0.5).softmax(-1)
        return self.proj((a @ v).transpose(1, 2).reshape(b, n, d))

    def forward(self, x, drop=0.0):
        x = x + drop_path(self.attn(self.norm1(x)), drop)
        return x + drop_path(self.fc2(F.gelu(self.fc1(self.norm2(x)))), drop)


def drop_path(y, rate):
    """Stochastic depth per sample (timm's drop_path): kept samples scaled by 1/keep."""
    if rate == 0.0:
        return y
    keep = 1.0 - rate
    return y * (y.new_empty(y.shape[0], 1, 1).bernoulli_(keep) / keep)


class ViT(nn.Module):
    """The ViT backbone (spec 1.1): a stride-p Conv2d patch embedding, [CLS] and learned positions,
    pre-norm blocks, final LayerNorm on all tokens; optionally iBOT's mask token."""

    def __init__(self, mask_token=False):
        super().__init__()
        self.grid = IMG // PATCH
        self.patch_embed = nn.Conv2d(1, WIDTH, PATCH, PATCH)  # PyTorch's default conv init, as the official ViT
        self.cls_token = nn.Parameter(torch.zeros(1, 1, WIDTH))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid ** 2, WIDTH))
        self.masked_embed = nn.Parameter(torch.zeros(1, WIDTH)) if mask_token else None
        self.blocks = nn.ModuleList([Block(WIDTH, HEADS, MLP_RATIO) for _ in range(DEPTH)])
        self.norm = nn.LayerNorm(WIDTH, eps=1e-6)
        nn.init.trunc_normal_(self.cls_token, std=0.02, a=-2.0, b=2.0)
        nn.init.trunc_normal_(self.pos_embed, std=0.02, a=-2.0, b=2.0)
        self.apply(init_weights)

    def positions(self, g):
        """The positional embedding for a g x g grid: bicubic with the official scale factor (g + 0.1)/grid."""
        if g == self.grid:
            return self.pos_embed
        patch = self.pos_embed[:, 1:].reshape(1, self.grid, self.grid, WIDTH).permute(0, 3, 1, 2)
        s = (g + 0.1) / self.grid
        patch = F.interpolate(patch, scale_factor=(s, s), mode="bicubic", align_corners=False)
        return torch.cat([self.pos_embed[:, :1], patch.permute(0, 2, 3, 1).reshape(1, g * g, WIDTH)], 1)

    def forward(self, x, mask=None, drop=0.0):
        t = self.patch_embed(x)  # [b, D, g, g]
        b, _, g, _ = t.shape
        t = t.flatten(2).transpose(1, 2)  # [b, N, D], row-major over the grid
        if mask is not None:  # masked patches take the mask token before [CLS] and positions
            m = mask.unsqueeze(-1)
            t = t * (1 - m) + self.masked_embed * m
        t = torch.cat([self.cls_token.expand(b, 1, WIDTH), t], 1) + self.positions(g)
        for i, blk in enumerate(self.blocks):
            t = blk(t, drop * i / max(1, DEPTH - 1))  # linspace(0, drop, depth)[i]
        return self.norm(t)


class Head(nn.Module):
    """The iBOT head (spec 1.3): 3-layer MLP, L2-normalised bottleneck, unit-norm prototypes (norm_last_layer)."""

    def __init__(self):
        super().__init__()
        self.mlp1, self.mlp2, self.mlp3 = nn.Linear(WIDTH, HIDDEN), nn.Linear(HIDDEN, HIDDEN), nn.Linear(HIDDEN, BOTTLENECK)
        self.apply(init_weights)
        self.last_layer = nn.Linear(BOTTLENECK, K, bias=False)  # weight_v: PyTorch's default init; g frozen at 1

    def bottleneck(self, x):
        return F.normalize(self.mlp3(F.gelu(self.mlp2(F.gelu(self.mlp1(x))))), dim=-1)

    def logits(self, z):
        return z @ F.normalize(self.last_layer.weight, dim=1).t()

    def forward(self, x):
        return self.logits(self.bottleneck(x))


class Net(nn.Module):
    def __init__(self, mask_token):
        super().__init__()
        self.backbone = ViT(mask_token)
        self.head = Head()


def count(params):
    return sum(p.numel() for p in params)


def synchronise():
    if dev.type == "cuda":
        torch.cuda.synchronize()


# ---- (a) The ViT training step ----

vit = ViT().to(dev)
vit_head = nn.Linear(WIDTH, CLASSES).to(dev)
init_weights(vit_head)
vit_params = list(vit.parameters()) + list(vit_head.parameters())
assert count(vit_params) == VIT_PARAMS, f"ViT step: {count(vit_params)} parameters, ours has {VIT_PARAMS}"
vit_opt = torch.optim.Adam(vit_params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
vit_images = torch.rand(B, 1, IMG, IMG) - 0.5  # on the host: ours uploads its batch every step too
vit_labels = torch.arange(B) % CLASSES


def vit_step():
    x, y = vit_images.to(dev), vit_labels.to(dev)
    loss = F.cross_entropy(vit_head(vit(x)[:, 0]), y)
    vit_opt.zero_grad(set_to_none=True)
    loss.backward()
    vit_opt.step()
    return loss.item()


# ---- (b) The iBOT training step ----

student = Net(mask_token=True).to(dev)
teacher = Net(mask_token=False).to(dev)
teacher.load_state_dict(student.state_dict(), strict=False)  # a copy of the student, without the mask token
for p in teacher.parameters():
    p.requires_grad_(False)
assert count(student.parameters()) == IBOT_STUDENT_PARAMS, f"iBOT student: {count(student.parameters())} parameters, ours has {IBOT_STUDENT_PARAMS}"
named = dict(student.named_parameters())
ema_pairs = [(p, named[n]) for n, p in teacher.named_parameters()]  # over the names both networks have
assert len(ema_pairs) == len(named) - 1
# get_params_groups: no weight decay on biases and other 1-D tensors; the schedule sets group 0's.
decayed = [p for p in student.parameters() if p.ndim > 1]
undecayed = [p for p in student.parameters() if p.ndim <= 1]
ibot_opt = torch.optim.AdamW([{"params": decayed}, {"params": undecayed, "weight_decay": 0.0}], lr=LR, weight_decay=WD)
center = torch.zeros(1, K, device=dev)
center2 = torch.zeros(1, 1, K, device=dev)
N = (IMG // PATCH) ** 2
globals_host = torch.rand(G * B, 1, IMG, IMG) - 0.5  # as bench/ibotStep.ts: crop-major, random values
locals_host = torch.rand(L * B, 1, LOCAL, LOCAL) - 0.5
masks_host = (torch.rand(G * B, N) < 0.2).float()


def ibot_step():
    global center, center2
    glob, loc, masks = globals_host.to(dev), locals_host.to(dev), masks_host.to(dev)
    for i, group in enumerate(ibot_opt.param_groups):  # the schedules' values, set every step
        group["lr"] = LR
        if i == 0:
            group["weight_decay"] = WD
    with torch.no_grad():
        tz = teacher.head(teacher.backbone(glob))  # [G·B, 1 + N, K]
    sz = student.head(student.backbone(glob, masks, DROP_PATH))  # the masked global crops
    sl = student.head(student.backbone(loc, None, DROP_PATH)[:, 0])  # local crops: only [CLS] goes on
    # The iBOT loss (spec 4): [CLS] across views, masked patches within a view.
    tc = F.softmax((tz[:, 0] - center) / TEACHER_TEMP, -1).chunk(G)
    tp = F.softmax((tz[:, 1:] - center2) / TEACHER_PATCH_TEMP, -1).chunk(G)
    sc = F.log_softmax(torch.cat([sz[:, 0], sl]) / STUDENT_TEMP, -1).chunk(G + L)
    sp = F.log_softmax(sz[:, 1:] / STUDENT_TEMP, -1).chunk(G)
    mk = masks.chunk(G)
    cls, patch, terms = 0.0, 0.0, 0
    for q in range(G):
        for v in range(G + L):
            if v == q:
                ce = -(tp[q] * sp[v]).sum(-1)
                patch = patch + ((ce * mk[v]).sum(-1) / mk[v].sum(-1).clamp(min=1.0)).mean()
            else:
                cls = cls + -(tc[q] * sc[v]).sum(-1).mean()
                terms += 1
    loss = cls / terms + patch / G
    with torch.no_grad():  # the centres move after the loss; the patch tokens and their agreement (ours returns both)
        tokens = (tz[:, 1:] - center2).argmax(-1)
        token_counts = torch.bincount(tokens.flatten(), minlength=K)
        agreement = ((sz[:, 1:].argmax(-1) == tokens).float() * masks).sum() / masks.sum().clamp(min=1.0)
        center = center * CENTER_M + tz[:, 0].mean(0, keepdim=True) * (1 - CENTER_M)
        center2 = center2 * CENTER_M + tz[:, 1:].mean(1).mean(0, keepdim=True) * (1 - CENTER_M)
    ibot_opt.zero_grad(set_to_none=True)
    loss.backward()
    with torch.no_grad():
        for p in student.parameters():  # utils.clip_gradients, per tensor, without a host sync per tensor
            p.grad.mul_(torch.clamp(CLIP / (p.grad.norm() + 1e-6), max=1.0))
    ibot_opt.step()
    with torch.no_grad():  # EMA of the teacher
        ts, ss = [t for t, _ in ema_pairs], [s.detach() for _, s in ema_pairs]
        if hasattr(torch, "_foreach_mul_"):
            torch._foreach_mul_(ts, MOMENTUM)
            torch._foreach_add_(ts, ss, alpha=1 - MOMENTUM)
        else:
            for t, s in zip(ts, ss):
                t.mul_(MOMENTUM).add_(s, alpha=1 - MOMENTUM)
    del token_counts, agreement
    return loss.item()


def blas():
    """The BLAS library this process loaded (Debian's torch takes whichever libblas.so.3 is installed)."""
    try:
        with open("/proc/self/maps") as f:
            libs = {os.path.basename(line.split()[-1]) for line in f if "blas" in line.lower() and "/" in line}
        return ", ".join(sorted(libs)) or None
    except OSError:
        return None


def device_name():
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def info():
    return {
        "torch": torch.__version__,
        "device": device_name(),
        "threads": torch.get_num_threads(),
        "params": {"vit": count(vit_params), "ibot": count(student.parameters()), "ibotTeacher": count(teacher.parameters())},
        "blas": blas(),
        "precision": precision,
        "python": platform.python_version(),
    }


STEPS = {"vit": vit_step, "ibot": ibot_step}
while True:
    line = sys.stdin.readline()
    if not line:
        break
    cmd = line.strip()
    if not cmd:
        continue
    if cmd == "quit":
        break
    try:
        if cmd == "info":
            reply(info())
        elif cmd in STEPS:
            synchronise()
            t0 = time.perf_counter()
            value = STEPS[cmd]()
            synchronise()
            ms = (time.perf_counter() - t0) * 1000
            reply({"ms": round(ms, 3), "loss": value if math.isfinite(value) else str(value)})
        else:
            reply({"error": f"unknown command {cmd!r} (vit, ibot, info, quit)"})
    except Exception as e:  # noqa: BLE001 - the caller gets the error as a reply
        traceback.print_exc()
        reply({"error": f"{type(e).__name__}: {e}"})
