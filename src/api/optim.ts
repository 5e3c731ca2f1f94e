/** `optim`: AdamW with PyTorch's semantics, as a pure function of parameters, gradients and state. */
export { adamInit, adamw, type AdamState, type AdamHyper } from "../models/optim.js";
