/**
 * wgrad/internals: every module's exports, flat, for tests, benchmarks and people extending the
 * library (rule tables, the compiler's stages, graph plumbing). Nothing here is promised to stay;
 * the public API is `wgrad` (src/index.ts).
 */
export * from "./dsl/index.js";
export * from "./autodiff/index.js";
export * from "./backend/index.js";
export * from "./models/index.js";
export * from "./data/index.js";
