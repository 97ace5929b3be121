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
 *   d       = ReduceSum(precision * EyeLike(precision[0,0]), axis 3)          [N, M, F] (diagonal of P/F)
 *   Fm      = ReduceSum(d > 0, axis 2)                                        [N, M, 1] (the machine's own F)
 *   r       = pz * Sqrt(Fm) / Sqrt(Max(d, 1e-30)) * mask                      [N, M, F]
 *   resid   = r of the selected mode                                          [N, F]
 *
 * resid is each feature's conditional residual given the machine's other features, in conditional
 * standard deviations: with P = R^-1 (not divided by F), (P z)_i / sqrt(P_ii) = (z_i - E[z_i | z_-i]) /
 * sd(z_i | z_-i), N(0,1) for a healthy window. The gateway averages it over windows (EWMA) to see a
 * small sustained shift of one channel that the window score, a sum over all F features, dilutes.
 * Padded features have d = 0, pz = 0 and mask 0, so they give 0 and do not count in Fm.
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
    outputs: [tensorInfo('score', ['N']), tensorInfo('contrib', ['N', 'F']), tensorInfo('mode', ['N']), tensorInfo('resid', ['N', 'F'])],
    initializers: [
      floatInit('zmin', [], [-zClip]),
      floatInit('zmax', [], [zClip]),
      int64Init('ax1', [1], [1]),
      int64Init('ax2', [1], [2]),
      int64Init('ax3', [1], [3]),
      int64Init('i0', [], [0]),
      floatInit('tiny', [], [1e-30]),
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
      // Conditional residuals (see the header).
      node('Gather', ['precision', 'i0'], ['p0'], [intAttr('axis', 0)]),
      node('Gather', ['p0', 'i0'], ['p00'], [intAttr('axis', 0)]),
      node('EyeLike', ['p00'], ['eye']),
      node('Mul', ['precision', 'eye'], ['pdiag']),
      node('ReduceSum', ['pdiag', 'ax3'], ['pd'], [intAttr('keepdims', 0)]),
      node('Greater', ['pd', 'tiny'], ['dpos']),
      node('Cast', ['dpos'], ['dposf'], [intAttr('to', 1)]),
      node('ReduceSum', ['dposf', 'ax2'], ['fm'], [intAttr('keepdims', 1)]),
      node('Sqrt', ['fm'], ['sfm']),
      node('Max', ['pd', 'tiny'], ['dsafe']),
      node('Sqrt', ['dsafe'], ['sd']),
      node('Mul', ['pz', 'sfm'], ['pzs']),
      node('Div', ['pzs', 'sd'], ['r0']),
      node('Mul', ['r0', 'mask3'], ['r']),
      node('GatherElements', ['r', 'idxe'], ['r1'], [intAttr('axis', 1)]),
      node('Squeeze', ['r1', 'ax1'], ['resid']),
    ],
    metadata: { zClip: String(zClip), model: BUILTIN_NAME },
  });
}
