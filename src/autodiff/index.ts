export { grad, valueAndGrad, vjp, jvp, jacfwd, jacrev, hvp, type GradOptions, type AuxOptions } from "./transforms.js";
export { vmap, type VmapOptions } from "./vmap.js";
export { backprop } from "./backprop.js";
export { vjpRules, unbroadcast, type VjpRule } from "./rules.js";
