export * from "./vit.js";
export * from "./init.js";
export * from "./optim.js";
export * from "./optax.js";
export * from "./ibot/index.js";
export * from "./vq.js";
