using CsCheck;
using Google.Protobuf;
using Onnx;
using static Raft.Teacher.Tests.TestModels;

namespace Raft.Teacher.Tests;

/// <summary>
/// Mutation tests of the teacher's ONNX model reading (#19): <see cref="TeacherSession.Open"/> loads the protobuf through
/// ONNX Runtime and reads the decoder's signature from its inputs and outputs. The engine's own export of a tiny model
/// is truncated, bit-flipped, given a huge initializer dimension or input dimension, or nested deep in If subgraphs;
/// opening it either succeeds with a signature or throws <see cref="InvalidDataException"/> naming the model file, never
/// another exception type (nor a crash), within <see cref="FuzzBounds.Timeout"/> and 4 × the file's bytes of managed
/// allocation (ONNX Runtime's own memory is native and not counted).
/// </summary>
public class OnnxModelFuzzTests
{
    private sealed class Exported : IDisposable
    {
        public readonly TempDirectory Dir = new();
        public readonly byte[] Valid;
        public string ModelPath => Path.GetFullPath(Dir.File(OnnxExporter.ModelFile));

        public Exported()
        {
            var c = Tiny(tied: true, bias: false);
            OnnxExporter.Export(c, RandomParameters(c, seed: 4), Dir.Path);
            Valid = File.ReadAllBytes(ModelPath);
        }

        /// <summary>How many mutants were refused (the rest opened).</summary>
        public int Refused;

        public void Open(string what, byte[] bytes)
        {
            File.WriteAllBytes(ModelPath, bytes);
            try { FuzzBounds.Run(what, bytes.Length, () => TeacherSession.Open(Dir.Path, Cpu()).Dispose()); }
            catch (InvalidDataException e)
            {
                Assert.True(e.Message.Contains(ModelPath), $"{what}: the error does not name {ModelPath}: {e.Message}");
                Refused++;
            }
        }

        public void Dispose() => Dir.Dispose();
    }

    [Fact]
    public void The_export_opens()
    {
        using var m = new Exported();
        m.Open("valid", m.Valid);
        using var s = TeacherSession.Open(m.Dir.Path, Cpu());
        Assert.Equal(11, s.VocabSize);
    }

    [Fact]
    public void Finding_a_huge_initializer_dimension_is_refused_before_onnx_runtime_sees_it()
    {
        using var m = new Exported();
        var model = ModelProto.Parser.ParseFrom(m.Valid);
        // found by the dimension edits: ONNX Runtime ran for minutes (past the test's 20 s) on an int64 initializer of
        // 7·10¹⁷ elements over 8 bytes of data, before it compared the two
        var t = model.Graph.Initializer.First(i => i.Name == "kv_heads");
        t.Dims.Clear();
        t.Dims.Add(708610918925183244);
        File.WriteAllBytes(m.ModelPath, model.ToByteArray());
        var e = Assert.Throws<InvalidDataException>(() => TeacherSession.Open(m.Dir.Path, Cpu()));
        Assert.Contains(m.ModelPath, e.Message);
        Assert.Contains("announces 708610918925183244 elements", e.Message);
        // and subgraphs past the nesting limit are refused by the same check
        GraphProto inner = new() { Name = "g" };
        for (int d = 0; d < OnnxModelCheck.MaxDepth + 1; d++)
        {
            var node = new NodeProto { OpType = "If" };
            node.Attribute.Add(new AttributeProto { Name = "then_branch", Type = AttributeProto.Types.AttributeType.Graph, G = inner });
            inner = new GraphProto { Name = $"g{d}" };
            inner.Node.Add(node);
        }
        model = ModelProto.Parser.ParseFrom(m.Valid);
        model.Graph.Node.Add(inner.Node[0]);
        File.WriteAllBytes(m.ModelPath, model.ToByteArray());
        e = Assert.Throws<InvalidDataException>(() => TeacherSession.Open(m.Dir.Path, Cpu()));
        Assert.Contains(m.ModelPath, e.Message);
        Assert.Contains($"nested deeper than {OnnxModelCheck.MaxDepth}", e.Message);
    }

    [Fact]
    public void Truncations_and_bit_flips_give_a_typed_error_naming_the_model()
    {
        using var m = new Exported();
        Gen.Int[0, m.Valid.Length - 1].Sample(n => m.Open($"model[..{n}]", m.Valid[..n]), iter: 120, threads: 1);
        // a cut protobuf may still parse, but not into this decoder's graph
        Assert.True(m.Refused >= 100, $"only {m.Refused} of 120 truncations refused");
        Gen.Int[0, m.Valid.Length * 8 - 1].Array[1, 6].Sample(flips =>
        {
            var bytes = (byte[])m.Valid.Clone();
            foreach (int bit in flips) bytes[bit / 8] ^= (byte)(1 << (bit % 8));
            m.Open($"model bits {string.Join(",", flips)}", bytes);
        }, iter: 250, threads: 1);
    }

    [Fact]
    public void Huge_dimensions_and_deep_subgraphs_give_a_typed_error_naming_the_model()
    {
        using var m = new Exported();
        var model = ModelProto.Parser.ParseFrom(m.Valid);
        // an initializer claiming far more elements than its data holds
        Gen.Select(Gen.Int[0, model.Graph.Initializer.Count - 1], Gen.Long[1, long.MaxValue]).Sample((which, dim) =>
        {
            var edited = model.Clone();
            var t = edited.Graph.Initializer[which];
            t.Dims.Clear();
            t.Dims.Add(dim);
            m.Open($"initializer {t.Name} dims [{dim}]", edited.ToByteArray());
        }, iter: 40, threads: 1);
        Assert.Equal(40, m.Refused);
        // a graph input or output with a huge or negative fixed dimension
        Gen.Select(Gen.Bool, Gen.Long).Sample((input, dim) =>
        {
            var edited = model.Clone();
            var vi = input ? edited.Graph.Input[0] : edited.Graph.Output[0];
            foreach (var d in vi.Type.TensorType.Shape.Dim) { d.ClearValue(); d.DimValue = dim; }
            m.Open($"{(input ? "input" : "output")} {vi.Name} dims {dim}", edited.ToByteArray());
        }, iter: 40, threads: 1);
        // If nodes nested in each other's then_branch (the only nesting ONNX has)
        Gen.Int[1, 1500].Sample(depth =>
        {
            var edited = model.Clone();
            GraphProto inner = new() { Name = "g0" };
            for (int d = 1; d <= depth; d++)
            {
                var node = new NodeProto { OpType = "If", Name = $"if{d}" };
                node.Input.Add("input_ids");
                node.Attribute.Add(new AttributeProto { Name = "then_branch", Type = AttributeProto.Types.AttributeType.Graph, G = inner });
                node.Attribute.Add(new AttributeProto { Name = "else_branch", Type = AttributeProto.Types.AttributeType.Graph, G = new GraphProto { Name = $"e{d}" } });
                inner = new GraphProto { Name = $"g{d}" };
                inner.Node.Add(node);
            }
            edited.Graph.Node.Add(inner.Node[0]);
            m.Open($"If nested {depth} deep", edited.ToByteArray());
        }, iter: 20, threads: 1);
        Assert.True(m.Refused >= 40 + 20, $"{m.Refused - 40} of 40 dimension edits and 20 nestings refused");
    }
}
