/**
 * The built-in scorer graph `mahalanobis-v1`: one generic graph, batched across machines, whose
 * per-machine parameters (the fitted baseline: M operating modes) are inputs, so one session.run scores
 * every machine of a tick even though each has its own metrics, modes and model. Padding contributes
 * nothing: padded features have mask = 0 (and scale = 1, precision = 0); padded modes repeat mode 0
 * (a duplicate cannot change a minimum). A metric missing from a window has mask 0: z = 0, "as normal".
 *
 *   z       = Clip((Unsqueeze(x,1) - center) / scale, -zClip, zClip) * mask   [N, M, F]
 *   pz      = Squeeze(MatMul(Unsqueeze(z, 2), precision), 2)                  [N, M, F] (precision symmetric)
 *   c       = z * pz                                                          [N, M, F]
 *   s       = ReduceSum(c, axis 2)                                            [N, M]    (= z^T P z per mode)
 *   score   = ReduceMin(s, axis 1)                                            [N]
 *   mode    = ArgMin(s, axis 1)                                               [N, 1]
 *   contrib = GatherElements(c, mode broadcast to [N,1,F], axis 1) squeezed   [N, F]
 *
 * The float64 reference is gateway/src/detect/baseline.ts referenceScore().
 */
import { encodeModel, floatInit, int64Init, intAttr, node, tensorInfo } from './onnx-builder.js';

export const BUILTIN_NAME = 'mahalanobis-v1';

export function buildScorerModel(zClip: number): Uint8Array {
  return encodeModel({
    name: BUILTIN_NAME,
    docString: 'Minimum over operating modes of a regularised Mahalanobis distance of standardised window features; per-machine parameters as inputs.',
    inputs: [
      tensorInfo('x', ['N', 'F']),
      tensorInfo('mask', ['N', 'F']),
      tensorInfo('center', ['N', 'M', 'F']),
      tensorInfo('scale', ['N', 'M', 'F']),
      tensorInfo('precision', ['N', 'M', 'F', 'F']),
    ],
    outputs: [tensorInfo('score', ['N']), tensorInfo('contrib', ['N', 'F']), tensorInfo('mode', ['N'])],
    initializers: [
      floatInit('zmin', [], [-zClip]),
      floatInit('zmax', [], [zClip]),
      int64Init('ax1', [1], [1]),
      int64Init('ax2', [1], [2]),
    ],
    nodes: [
      node('Unsqueeze', ['x', 'ax1'], ['x3']),
      node('Sub', ['x3', 'center'], ['d']),
      node('Div', ['d', 'scale'], ['zr']),
      node('Clip', ['zr', 'zmin', 'zmax'], ['zc']),
      node('Unsqueeze', ['mask', 'ax1'], ['mask3']),
      node('Mul', ['zc', 'mask3'], ['z']),
      node('Unsqueeze', ['z', 'ax2'], ['z4']),
      node('MatMul', ['z4', 'precision'], ['pz4']),
      node('Squeeze', ['pz4', 'ax2'], ['pz']),
      node('Mul', ['z', 'pz'], ['c']),
      node('ReduceSum', ['c', 'ax2'], ['s'], [intAttr('keepdims', 0)]),
      node('ReduceMin', ['s', 'ax1'], ['score'], [intAttr('keepdims', 0)]),
      node('ArgMin', ['s'], ['idx'], [intAttr('axis', 1), intAttr('keepdims', 1), intAttr('select_last_index', 0)]),
      node('Unsqueeze', ['idx', 'ax2'], ['idx3']),
      node('Shape', ['x3'], ['x3shape']),
      node('Expand', ['idx3', 'x3shape'], ['idxe']),
      node('GatherElements', ['c', 'idxe'], ['c1'], [intAttr('axis', 1)]),
      node('Squeeze', ['c1', 'ax1'], ['contrib']),
      node('Squeeze', ['idx', 'ax1'], ['idx1']),
      node('Cast', ['idx1'], ['mode'], [intAttr('to', 1)]),
    ],
    metadata: { zClip: String(zClip), model: BUILTIN_NAME },
  });
}
