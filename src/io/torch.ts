/**
 * Released PyTorch ViT backbones (iBOT, DINO, timm) as wgrad ViT parameters. The names and layouts
 * are the ones src/train/checkpoint.ts writes (officialName, torchShape, fromTorchLayout): one
 * mapping, used both ways. PyTorch stores Linear weights [out, in] (ours are [in, out]), the patch
 * embedding as a Conv2d weight [D, C, p, p] (ours is the matrix [C·p·p, D] of the same stride-p
 * convolution) and the fused qkv as timm does ([3D, D], q then k then v, each head's features
 * contiguous), which is the order our multiHeadAttention slices.
 */
import { HostTensor, hostTensor } from "../backend/index.js";
import { dotted, flatten, formatShape, isFloat, isTensor, leafPaths, randomKey, unflatten, type MapLeaves, type Tensor } from "../dsl/index.js";
import { initViT } from "../models/init.js";
import type { ViTConfig, ViTParams } from "../models/vit.js";
import { fromTorchLayout, isTorchLinear, nonFiniteCount, officialName, torchShape } from "../train/checkpoint.js";
import { CheckpointError, safetensorsDType } from "./safetensors.js";

/** ViT parameters as host values: what `loadTorchViT` returns and a CPU run takes. */
export type HostViTParams = MapLeaves<ViTParams, Tensor, HostTensor>;

/** Options of `loadTorchViT`. */
export interface TorchViTOptions {
  /**
   * The prefix of the backbone's names, stripped before mapping: "backbone." (DINO/iBOT
   * checkpoints), "module.backbone." (saved from DistributedDataParallel), "teacher.backbone."
   * (wgrad's own checkpoints), "" (timm). Left out, it is the one under which `cls_token` lives.
   */
  readonly prefix?: string;
  /** What errors call the tensors' source (a file path); "state dict" by default. */
  readonly file?: string;
}

/** A loaded backbone: the parameters, the prefix they were found under, and the names that were not used (heads, optimizer state...). */
export interface TorchViT {
  readonly params: HostViTParams;
  readonly prefix: string;
  readonly ignored: readonly string[];
}

/** Names under the prefix that would change the forward pass if dropped (distillation/register tokens, a pre-norm): refused, never ignored. */
const FORWARD_CHANGING = /^(dist_token|reg_token|register_tokens|norm_pre\.)/;

/** The prefix under which `cls_token` lives: the one backbone of the file, or an error naming the candidates. */
function detectPrefix(names: readonly string[], file: string): string {
  const found = names.filter((n) => n === "cls_token" || n.endsWith(".cls_token")).map((n) => n.slice(0, -"cls_token".length));
  if (found.length === 1) return found[0];
  if (!found.length)
    throw new CheckpointError(
      file,
      undefined,
      `holds no "cls_token" (under any prefix) among its ${names.length} tensors, so it is not a ViT backbone wgrad knows`,
      "check that it is a ViT state dict (timm, DINO, iBOT); pass { prefix } if its backbone's names are spelled otherwise",
    );
  throw new CheckpointError(
    file,
    undefined,
    `holds a "cls_token" under ${found.length} prefixes (${found.map((p) => `"${p}"`).join(", ")})`,
    `pass { prefix } to choose one, e.g. { prefix: "${found.find((p) => p.includes("teacher")) ?? found[0]}" }`,
  );
}

/** The shapes of our ViT's leaves for `cfg`, from the initialiser's graph (built, never run): the tree is defined once, in src/models/init.ts. */
const vitTemplate = (cfg: ViTConfig) => flatten(initViT(randomKey(0), cfg), isTensor);

const OTHER_CONFIG =
  "build the ViTConfig with the checkpoint's architecture (width, depth, heads, mlpRatio, patchSize, imageSize, channels, qkvBias); for another image size, load with the checkpoint's and resize pos_embed (models.interpolatePosEmbed)";

/** One backbone tensor of the file, checked against the PyTorch shape our leaf implies, in our layout and F32. */
function backboneTensor(file: string, key: string, t: HostTensor | undefined, official: string, leaf: Tensor, cfg: ViTConfig): HostTensor {
  const want = torchShape(official, leaf.shape, { channels: cfg.channels, size: cfg.patchSize, dims: cfg.dims ?? 2 });
  if (!t) throw new CheckpointError(file, key, `is missing (a ViT of this config needs it, of shape ${formatShape(want)})`, OTHER_CONFIG);
  if (!isFloat(t.dtype))
    throw new CheckpointError(
      file,
      key,
      `is ${safetensorsDType(t.dtype)}${formatShape(t.shape)}, a ViT weight is floating point`,
      "save the tensor as a float (tensor.float())",
    );
  if (t.shape.length !== want.length || t.shape.some((d, i) => d !== want[i]))
    throw new CheckpointError(file, key, `has shape ${formatShape(t.shape)}, a ViT of this config needs ${formatShape(want)}`, OTHER_CONFIG);
  const bad = nonFiniteCount(t);
  if (bad)
    throw new CheckpointError(
      file,
      key,
      `holds ${bad} non-finite values (NaN or ±Infinity) among ${t.size}`,
      "the model that wrote it diverged; use another checkpoint",
    );
  const f32 = t.dtype === "f32" ? t : hostTensor(Float32Array.from(t.data), t.shape, "f32"); // F64 rounded: our ViT computes in F32
  return isTorchLinear(official, leaf) ? fromTorchLayout(f32, leaf.shape) : f32;
}

/**
 * Maps a PyTorch ViT state dict (name → HostTensor, e.g. `(await io.readTensors(path)).tensors`)
 * onto our ViTParams for `cfg`: official names (patch_embed.proj, cls_token, pos_embed,
 * blocks.N.{norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2}, norm) under `options.prefix`
 * (detected where `cls_token` is when left out), Linear and Conv2d weights transposed to our
 * layout, F16/BF16/F64 as F32. A backbone tensor missing, misshaped or not finite is a
 * CheckpointError naming it with both shapes; so is a backbone tensor our ViT has no place for
 * (a block's LayerScale, a qkv bias when cfg.qkvBias is false, blocks beyond cfg.depth), since
 * dropping it would change the forward pass. Everything else (heads, the mask token, other
 * prefixes) is left out and listed in `ignored`.
 */
export function loadTorchViT(tensors: Readonly<Record<string, HostTensor>>, cfg: ViTConfig, options: TorchViTOptions = {}): TorchViT {
  const file = options.file ?? "state dict";
  const names = Object.keys(tensors);
  const prefix = options.prefix ?? detectPrefix(names, file);
  const { leaves, def } = vitTemplate(cfg);
  const used = new Set<string>();
  const params = leafPaths(def, "", dotted).map((path, i) => {
    const official = officialName(`backbone.${path}`); // officialName maps the paths of a student/teacher tree, whose ViT is under "backbone."
    const key = prefix + official.slice("backbone.".length);
    used.add(key);
    return backboneTensor(file, key, Object.hasOwn(tensors, key) ? tensors[key] : undefined, official, leaves[i], cfg);
  });
  const rest = names.filter((n) => !used.has(n));
  const unplaced = rest.filter((n) => n.startsWith(prefix) && (n.startsWith(`${prefix}blocks.`) || FORWARD_CHANGING.test(n.slice(prefix.length))));
  if (unplaced.length)
    throw new CheckpointError(
      file,
      unplaced[0],
      `is part of the backbone but has no place in a wgrad ViT of this config${unplaced.length > 1 ? ` (nor have ${unplaced.length - 1} more: ${unplaced.slice(1, 6).join(", ")})` : ""}`,
      `ignoring it would change the model's outputs; check cfg.depth (${cfg.depth}) and cfg.qkvBias (${cfg.qkvBias}), or it is a layer wgrad's ViT does not have (LayerScale, register tokens)`,
    );
  return { params: unflatten(def, params) as HostViTParams, prefix, ignored: rest };
}
