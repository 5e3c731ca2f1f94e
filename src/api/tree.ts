/** `tree`: pytrees (nested arrays and plain objects with tensors or arrays at the leaves): flatten, rebuild, map. */
export {
  flatten,
  unflatten,
  mapTrees as map,
  mapTree as mapWhere,
  leafPaths as paths,
  leafCount,
  type Tree,
  type TreeDef,
  type MapLeaves,
} from "../dsl/pytree.js";
