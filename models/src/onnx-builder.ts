/**
 * Minimal helpers to write ONNX models with onnx-proto (ONNX IR 8, opset 18).
 * Spec: https://onnx.ai/onnx/repo-docs/IR.html and https://onnx.ai/onnx/operators/
 */
import pkg from 'onnx-proto';

const { onnx } = pkg;
export { onnx };

export const IR_VERSION = 8;
export const OPSET = 18;

export type Dim = number | string;

export function tensorInfo(name: string, shape: readonly Dim[], elemType = onnx.TensorProto.DataType.FLOAT): pkg.onnx.IValueInfoProto {
  return onnx.ValueInfoProto.create({
    name,
    type: onnx.TypeProto.create({
      tensorType: onnx.TypeProto.Tensor.create({
        elemType,
        shape: onnx.TensorShapeProto.create({
          dim: shape.map((d) =>
            typeof d === 'number' ? onnx.TensorShapeProto.Dimension.create({ dimValue: d }) : onnx.TensorShapeProto.Dimension.create({ dimParam: d }),
          ),
        }),
      }),
    }),
  });
}

export function floatInit(name: string, dims: readonly number[], values: readonly number[]): pkg.onnx.ITensorProto {
  return onnx.TensorProto.create({ name, dims: [...dims], dataType: onnx.TensorProto.DataType.FLOAT, floatData: [...values] });
}

export function int64Init(name: string, dims: readonly number[], values: readonly number[]): pkg.onnx.ITensorProto {
  return onnx.TensorProto.create({ name, dims: [...dims], dataType: onnx.TensorProto.DataType.INT64, int64Data: [...values] });
}

export function node(opType: string, inputs: string[], outputs: string[], attrs: pkg.onnx.IAttributeProto[] = []): pkg.onnx.INodeProto {
  return onnx.NodeProto.create({ opType, input: inputs, output: outputs, name: `${opType}_${outputs[0] ?? ''}`, attribute: attrs });
}

export function intAttr(name: string, i: number): pkg.onnx.IAttributeProto {
  return onnx.AttributeProto.create({ name, type: onnx.AttributeProto.AttributeType.INT, i });
}

export interface GraphSpec {
  name: string;
  docString?: string;
  inputs: pkg.onnx.IValueInfoProto[];
  outputs: pkg.onnx.IValueInfoProto[];
  nodes: pkg.onnx.INodeProto[];
  initializers?: pkg.onnx.ITensorProto[];
  metadata?: Record<string, string>;
  opset?: number;
}

/** Serialise a model; deterministic for the same spec (protobuf field order is fixed). */
export function encodeModel(spec: GraphSpec): Uint8Array {
  const model = onnx.ModelProto.create({
    irVersion: IR_VERSION,
    producerName: 'smartops-gateway',
    producerVersion: '1',
    docString: spec.docString ?? '',
    opsetImport: [onnx.OperatorSetIdProto.create({ domain: '', version: spec.opset ?? OPSET })],
    metadataProps: Object.entries(spec.metadata ?? {}).map(([key, value]) => onnx.StringStringEntryProto.create({ key, value })),
    graph: onnx.GraphProto.create({
      name: spec.name,
      input: spec.inputs,
      output: spec.outputs,
      node: spec.nodes,
      initializer: spec.initializers ?? [],
    }),
  });
  return onnx.ModelProto.encode(model).finish();
}
