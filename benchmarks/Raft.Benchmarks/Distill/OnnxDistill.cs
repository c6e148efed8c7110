using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Onnx;

namespace Raft.Benchmarks.Distill;

/// <summary>
/// The fused forward-KL loss and its gradient as an ONNX graph (opset 17), built in code with OnnxSharp's
/// protobuf classes and run by ONNX Runtime's CPU provider. The teacher's top-K (indices int64 [rows, K],
/// probabilities [rows, K]) is an input: the graph does not compute TopK/Softmax from teacher logits, so it
/// does the same work as the other methods. Graph:
/// <code>
/// z      = Div(student, τ)                         [rows, V]
/// logq   = LogSoftmax(z, axis=-1)                  [rows, V]
/// logq_k = GatherElements(logq, idx, axis=1)       [rows, K]
/// loss   = ReduceSum(p · (Log(p) − logq_k)) · τ²/rows           []
/// q      = Exp(logq)                               [rows, V]
/// g      = ScatterElements(q · ReduceSum(p, axis 1), idx, −p, axis=1, reduction=add) · τ/rows
/// </code>
/// The session is created once with intra-op threads = <see cref="Environment.ProcessorCount"/>; inputs
/// and outputs are bound through <see cref="OrtIoBinding"/> to preallocated buffers (the student array
/// itself, no copy), so a call allocates only ONNX Runtime's own intermediates (from its arena).
/// </summary>
public sealed class OnnxDistill : IDisposable
{
    private readonly InferenceSession _session;
    private readonly RunOptions _runOptions = new();
    private readonly OrtIoBinding _binding;
    private readonly OrtValue _student, _indices, _probs, _loss, _gradient;
    private readonly float[] _lossBuffer = new float[1];

    /// <summary>The gradient buffer [rows, V] the graph writes.</summary>
    public float[] Gradient { get; }

    /// <summary>Builds the model for the problem's shape and binds its buffers.</summary>
    public OnnxDistill(DistillProblem p, float[]? gradient = null)
    {
        byte[] model = BuildModel(p.Rows, p.Vocab, p.TopK, p.Temperature).ToByteArray();
        using var options = new SessionOptions
        {
            IntraOpNumThreads = Environment.ProcessorCount,
            InterOpNumThreads = 1,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
        };
        _session = new InferenceSession(model, options);
        Gradient = gradient ?? p.NewTouchedBuffer();
        long[] full = [p.Rows, p.Vocab], topK = [p.Rows, p.TopK];
        _student = OrtValue.CreateTensorValueFromMemory(p.Student, full);
        _indices = OrtValue.CreateTensorValueFromMemory(p.Indices64, topK);
        _probs = OrtValue.CreateTensorValueFromMemory(p.Probs, topK);
        _gradient = OrtValue.CreateTensorValueFromMemory(Gradient, full);
        _loss = OrtValue.CreateTensorValueFromMemory(_lossBuffer, []);
        _binding = _session.CreateIoBinding();
        _binding.BindInput("student", _student);
        _binding.BindInput("teacher_indices", _indices);
        _binding.BindInput("teacher_probs", _probs);
        _binding.BindOutput("loss", _loss);
        _binding.BindOutput("gradient", _gradient);
    }

    /// <summary>One call: returns the loss, the gradient is in <see cref="Gradient"/>.</summary>
    public double Run()
    {
        _session.RunWithBinding(_runOptions, _binding);
        return _lossBuffer[0];
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _binding.Dispose();
        _student.Dispose(); _indices.Dispose(); _probs.Dispose(); _loss.Dispose(); _gradient.Dispose();
        _runOptions.Dispose();
        _session.Dispose();
    }

    /// <summary>The ONNX model (opset 17, IR version 8) for [rows, vocab] students and [rows, k] teachers.</summary>
    public static ModelProto BuildModel(int rows, int vocab, int k, float temperature)
    {
        var g = new GraphProto { Name = "forward_kl_topk" };
        g.Input.Add(Value("student", TensorProto.Types.DataType.Float, rows, vocab));
        g.Input.Add(Value("teacher_indices", TensorProto.Types.DataType.Int64, rows, k));
        g.Input.Add(Value("teacher_probs", TensorProto.Types.DataType.Float, rows, k));
        g.Output.Add(Value("loss", TensorProto.Types.DataType.Float));
        g.Output.Add(Value("gradient", TensorProto.Types.DataType.Float, rows, vocab));

        g.Initializer.Add(Scalar("tau", temperature));
        g.Initializer.Add(Scalar("loss_scale", temperature * temperature / rows));
        g.Initializer.Add(Scalar("grad_scale", temperature / rows));
        var axis1 = new TensorProto { Name = "axis1", DataType = (int)TensorProto.Types.DataType.Int64 };
        axis1.Dims.Add(1);
        axis1.Int64Data.Add(1);
        g.Initializer.Add(axis1);

        // loss
        g.Node.Add(Node("Div", ["student", "tau"], ["z"]));
        g.Node.Add(Node("LogSoftmax", ["z"], ["logq"], IntAttr("axis", -1)));
        g.Node.Add(Node("GatherElements", ["logq", "teacher_indices"], ["logq_k"], IntAttr("axis", 1)));
        g.Node.Add(Node("Log", ["teacher_probs"], ["logp"]));
        g.Node.Add(Node("Sub", ["logp", "logq_k"], ["log_ratio"]));
        g.Node.Add(Node("Mul", ["teacher_probs", "log_ratio"], ["kl_terms"]));
        g.Node.Add(Node("ReduceSum", ["kl_terms"], ["kl_sum"], IntAttr("keepdims", 0)));
        g.Node.Add(Node("Mul", ["kl_sum", "loss_scale"], ["loss"]));
        // gradient τ/rows · (q·Σp − scatter(p))
        g.Node.Add(Node("Exp", ["logq"], ["q"]));
        g.Node.Add(Node("ReduceSum", ["teacher_probs", "axis1"], ["p_sum"], IntAttr("keepdims", 1)));
        g.Node.Add(Node("Mul", ["q", "p_sum"], ["q_psum"]));
        g.Node.Add(Node("Neg", ["teacher_probs"], ["neg_p"]));
        g.Node.Add(Node("ScatterElements", ["q_psum", "teacher_indices", "neg_p"], ["dz"],
            IntAttr("axis", 1), StringAttr("reduction", "add")));
        g.Node.Add(Node("Mul", ["dz", "grad_scale"], ["gradient"]));

        var model = new ModelProto
        {
            IrVersion = 8,
            ProducerName = "Raft.Benchmarks",
            Graph = g,
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 17 });
        return model;
    }

    private static ValueInfoProto Value(string name, TensorProto.Types.DataType type, params long[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (long d in dims) shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = d });
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = shape } },
        };
    }

    private static TensorProto Scalar(string name, float value)
    {
        var t = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Float };
        t.FloatData.Add(value);
        return t;
    }

    private static NodeProto Node(string op, string[] inputs, string[] outputs, params AttributeProto[] attributes)
    {
        var n = new NodeProto { OpType = op, Name = outputs[0] + "_" + op };
        n.Input.AddRange(inputs);
        n.Output.AddRange(outputs);
        n.Attribute.AddRange(attributes);
        return n;
    }

    private static AttributeProto IntAttr(string name, long value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };

    private static AttributeProto StringAttr(string name, string value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.String, S = ByteString.CopyFromUtf8(value) };
}
