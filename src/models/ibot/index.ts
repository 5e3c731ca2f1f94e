export * from "./head.js";
export * from "./loss.js";
export * from "./posembed.js";
export * from "./model.js";
export * from "./masking.js";
export * from "./schedules.js";
export * from "./vqTokens.js";
