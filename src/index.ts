/**
 * wgrad: pure functional tensor graphs with static shapes, reverse-mode autodiff over pytrees,
 * and backends that compile the graphs (a CPU reference interpreter; WebGPU/WGSL).
 */
export * from "./dsl/index.js";
export * from "./autodiff/index.js";
export * from "./backend/index.js";
export * from "./models/index.js";
export * from "./data/index.js";
