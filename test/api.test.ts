/** The public API's surface: what `wgrad` and `wgrad/testing` export, and that every export is documented (issue 16). */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import * as api from "../src/index.js";
import * as internals from "../src/internals.js";

const ENTRY_POINTS = ["../src/index.ts", "../src/testing/index.ts"].map((p) => fileURLToPath(new URL(p, import.meta.url)));

/**
 * The public exports whose declaration has no doc comment, by their path from the entry point
 * ("nn.relu"). Namespaces (`export * as nn`) are walked into; a re-export is judged by the
 * declaration it names. The same check as .scratch/undoc.ts.
 */
function undocumentedExports(): string[] {
  const program = ts.createProgram(ENTRY_POINTS, {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    strict: true,
  });
  const checker = program.getTypeChecker();
  const missing: string[] = [];
  const visit = (sym: ts.Symbol, path: string) => {
    const target = sym.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(sym) : sym;
    if (target.flags & ts.SymbolFlags.ValueModule && target.exports && !(target.flags & (ts.SymbolFlags.Function | ts.SymbolFlags.Class))) {
      for (const e of checker.getExportsOfModule(target)) visit(e, `${path}.${e.name}`);
      return;
    }
    const doc = ts.displayPartsToString(target.getDocumentationComment(checker)).trim();
    if (!doc) missing.push(path);
  };
  for (const f of ENTRY_POINTS) {
    const source = program.getSourceFile(f);
    assert.ok(source, `${f} is not in the program`);
    const mod = checker.getSymbolAtLocation(source);
    assert.ok(mod, `${f} has no module symbol`);
    for (const e of checker.getExportsOfModule(mod)) visit(e, e.name);
  }
  return missing;
}

describe("the public API", () => {
  test("every export of the public API (wgrad, wgrad/testing) has a doc comment", () => {
    const missing = undocumentedExports();
    assert.deepEqual(missing, [], `${missing.length} public exports have no doc comment: ${missing.join(" ")}`);
  });

  test("the public API leaves internals out", () => {
    const internalNames = [
      "make",
      "inferRules",
      "vjpRules",
      "dispatch",
      "CpuProgram",
      "compileWebGpu",
      "NO_ADAPTER_HELP",
      "MATMUL_CANDIDATES",
      "CACHE_MAGIC",
      "pythonRound",
      "input",
      "nestedList",
      "backprop",
      "evalRules",
      "lowerings",
    ];
    const leaked = internalNames.filter((n) => n in api);
    assert.deepEqual(leaked, [], `wgrad exports internals: ${leaked.join(", ")}`);

    // The namespaces, with at least the names the README uses.
    const namespaces: Record<string, readonly string[]> = {
      nn: ["linear", "crossEntropy"],
      random: ["key", "split"],
      tree: ["flatten", "map"],
      optim: ["adamw"],
      models: ["vit", "ibotStep"],
      data: ["loadDataset"],
    };
    const exported = api as unknown as Record<string, unknown>;
    for (const [ns, names] of Object.entries(namespaces)) {
      const value = exported[ns];
      assert.ok(typeof value === "object" && value !== null, `wgrad.${ns} is a namespace object, got ${typeof value}`);
      for (const n of names) assert.equal(typeof (value as Record<string, unknown>)[n], "function", `wgrad.${ns}.${n} is a function`);
    }
  });

  test("wgrad/internals still has everything", () => {
    const all = internals as unknown as Record<string, unknown>;
    for (const n of ["make", "vjpRules", "compileWebGpu", "CpuProgram"]) assert.ok(all[n] !== undefined, `wgrad/internals exports ${n}`);
  });
});
