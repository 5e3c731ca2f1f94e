/**
 * `io`: saving and loading pytrees as safetensors files (the format of Hugging Face and of PyTorch
 * checkpoints), and loading released PyTorch ViT backbones (iBOT, DINO, timm) into `models.vit`.
 * Every function is a plain async (or sync) function that throws CheckpointError for a file that
 * cannot be read, is damaged, or does not hold what was asked for.
 */
export { save, load, readTensors, writeTensors, TREE_METADATA_KEY, type LoadOptions, type SaveLeaf, type LikeLeaf } from "../io/pytree.js";
export { loadTorchViT, type TorchViT, type TorchViTOptions, type HostViTParams } from "../io/torch.js";
export { CheckpointError, MAX_HEADER_BYTES } from "../io/safetensors.js";
