#!/usr/bin/env python3
"""
Makes test/fixtures/torch-vit-tiny.safetensors: a tiny timm/DINO/iBOT-style ViT built in real
PyTorch, its state dict, an input and PyTorch's output, so that test/io.test.ts can check that
wgrad's `io.loadTorchViT` + `models.vit` reproduce PyTorch without needing Python.

    /usr/bin/python3 scripts/torch-vit-fixture.py            # writes the fixture (torch 1.13 was used)
    python3 scripts/torch-vit-fixture.py --convert model.pth model.safetensors [--key teacher]

The model: image 8, 1 channel, patch 4 (4 patches), width 16, depth 2, 2 heads, MLP ratio 2, qkv
bias; pre-norm blocks with LayerNorm eps 1e-6 and exact GELU, as timm's VisionTransformer and the
DINO/iBOT vision_transformer.py (wgrad's models.vit uses the same: LN_EPS = 1e-6, erf GELU). The
modules are written here with nn.Conv2d/nn.Linear/nn.LayerNorm under the official names
(patch_embed.proj, cls_token, pos_embed, blocks.N.norm1, blocks.N.attn.qkv, blocks.N.attn.proj,
blocks.N.norm2, blocks.N.mlp.fc1, blocks.N.mlp.fc2, norm), inside a wrapper with a `backbone` and
a `head` (as DINO/iBOT's MultiCropWrapper), so the state dict's names are "backbone.cls_token",
..., "head.weight", "head.bias": the head is what a loader must ignore.

The weights are random and large (std 0.3, not timm's 0.02), so that a transposed or misplaced
weight changes the output visibly. One weight is stored as F16 (blocks.0.attn.qkv.weight) and one
as BF16 (blocks.1.mlp.fc1.weight); the model is given those weights rounded as stored, so its
output is the output of the file's weights. The forward pass runs in float64 on the float32 input
(its reference is exact up to float64 rounding); the float32 PyTorch forward is printed beside it.

The file also holds, under "fixture.":
    fixture.input          F32 [2, 1, 8, 8]   the input images
    fixture.expected       F64 [2, 5, 16]     backbone(input): the final norm's tokens, [CLS] first
    fixture.expected_cls   F64 [2, 16]        the [CLS] token of that output

The safetensors format is written by hand (write_safetensors below): an 8-byte little-endian
header length, a JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {...}} padded
with spaces to a multiple of 8 bytes, then each tensor's raw little-endian bytes, back to back.
"""
import json
import struct
import sys

import torch
from torch import nn

IMAGE, CHANNELS, PATCH, WIDTH, DEPTH, HEADS, MLP_RATIO = 8, 1, 4, 16, 2, 2, 2
OUT = "test/fixtures/torch-vit-tiny.safetensors"
STORED_AS = {"backbone.blocks.0.attn.qkv.weight": "F16", "backbone.blocks.1.mlp.fc1.weight": "BF16"}


class PatchEmbed(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Conv2d(CHANNELS, WIDTH, kernel_size=PATCH, stride=PATCH)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)  # [B, D, h, w] -> [B, N, D], patches row-major


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = (WIDTH // HEADS) ** -0.5
        self.qkv = nn.Linear(WIDTH, 3 * WIDTH, bias=True)
        self.proj = nn.Linear(WIDTH, WIDTH)

    def forward(self, x):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, HEADS, c // HEADS).permute(2, 0, 3, 1, 4)  # timm's fused layout
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(WIDTH, WIDTH * MLP_RATIO)
        self.act = nn.GELU()  # exact (erf) GELU
        self.fc2 = nn.Linear(WIDTH * MLP_RATIO, WIDTH)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm1 = nn.LayerNorm(WIDTH, eps=1e-6)
        self.attn = Attention()
        self.norm2 = nn.LayerNorm(WIDTH, eps=1e-6)
        self.mlp = Mlp()

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    def __init__(self):
        super().__init__()
        self.patch_embed = PatchEmbed()
        n = (IMAGE // PATCH) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, WIDTH))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + n, WIDTH))
        self.blocks = nn.ModuleList([Block() for _ in range(DEPTH)])
        self.norm = nn.LayerNorm(WIDTH, eps=1e-6)

    def forward(self, x):
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)


class Wrapper(nn.Module):
    """DINO/iBOT's MultiCropWrapper in miniature: the backbone and a head the loader ignores."""

    def __init__(self):
        super().__init__()
        self.backbone = VisionTransformer()
        self.head = nn.Linear(WIDTH, 8)


SAFE_DTYPE = {torch.float32: "F32", torch.float64: "F64", torch.float16: "F16", torch.bfloat16: "BF16", torch.int32: "I32", torch.int64: "I64", torch.bool: "BOOL"}


def tensor_bytes(t):
    """A tensor's raw little-endian bytes (bfloat16 through an int16 view: numpy has no bfloat16)."""
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    a = t.numpy()
    return a.astype(a.dtype.newbyteorder("<")).tobytes()


def write_safetensors(path, tensors, metadata=None):
    """Writes {name: torch.Tensor} as safetensors, in name order; metadata is {str: str}."""
    header, chunks, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name in sorted(tensors):
        t = tensors[name]
        raw = tensor_bytes(t)
        header[name] = {"dtype": SAFE_DTYPE[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # pad with spaces so the data section is 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in chunks:
            f.write(raw)


def rounded(t, dtype):
    """t as the file stores it: cast to F16/BF16 (if so stored), in float32."""
    return t.to({"F16": torch.float16, "BF16": torch.bfloat16}[dtype]).float() if dtype else t


def make_fixture():
    torch.manual_seed(0)
    model = Wrapper()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm1.weight") or name.endswith("norm2.weight") or name.endswith("norm.weight"):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
            else:
                p.copy_(0.3 * torch.randn_like(p))
            p.copy_(rounded(p, STORED_AS.get(name)))  # the model computes with the weights as stored
    x = torch.randn(2, CHANNELS, IMAGE, IMAGE)
    with torch.no_grad():
        expected = model.double().backbone(x.double())
        f32 = model.float().backbone(x)
    print(f"float32 PyTorch vs float64 PyTorch: max |diff| {float((f32.double() - expected).abs().max()):.3e}")
    state = model.state_dict()
    tensors = {k: (v.to({"F16": torch.float16, "BF16": torch.bfloat16}[STORED_AS[k]]) if k in STORED_AS else v.float()) for k, v in state.items()}
    tensors["fixture.input"] = x
    tensors["fixture.expected"] = expected
    tensors["fixture.expected_cls"] = expected[:, 0].contiguous()
    meta = {"format": "pt", "made_by": "scripts/torch-vit-fixture.py", "torch": torch.__version__}
    write_safetensors(OUT, tensors, meta)
    print(f"wrote {OUT}: {len(tensors)} tensors")


def convert(src, dst, key=None):
    """
    A .pth state dict (optionally the sub-dict `key` of a training checkpoint) → safetensors. Left
    out, and listed: values that are not tensors, and tensors of dtypes wgrad does not read (I64
    counters such as num_batches_tracked), which would make wgrad refuse the whole file.
    """
    obj = torch.load(src, map_location="cpu")
    if key is not None:
        obj = obj[key]
    readable = {torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int32, torch.bool}
    tensors = {k: v for k, v in obj.items() if torch.is_tensor(v) and v.dtype in readable}
    skipped = [k for k in obj if k not in tensors]
    write_safetensors(dst, tensors, {"format": "pt"})
    print(f"wrote {dst}: {len(tensors)} tensors" + (f"; left out (not tensors, or of a dtype wgrad does not read): {', '.join(skipped)}" if skipped else ""))


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--convert"]:
        key = args[args.index("--key") + 1] if "--key" in args else None
        convert(args[1], args[2], key)
    else:
        make_fixture()
