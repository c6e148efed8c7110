using Google.Protobuf;
using Onnx;
using Raft.Pipeline.Filtering;

namespace Raft.Pipeline.Tests;

public sealed class OnnxEmbeddingSimilarityTests
{
    private const int D = 4;
    private static readonly string[] Vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "dog", "ran", "on", "mat"];

    // "The cat sat" and "dog ran on the mat", tokenised by hand with [CLS] = 2, [SEP] = 3
    private static readonly int[] IdsA = [2, 5, 6, 7, 3];
    private static readonly int[] IdsB = [2, 8, 9, 10, 5, 11, 3];
    private const string TextA = "The cat sat";
    private const string TextB = "dog ran on the mat";

    private static TensorProto Tensor(string name, TensorProto.Types.DataType type, params long[] dims)
    {
        var t = new TensorProto { Name = name, DataType = (int)type };
        t.Dims.AddRange(dims);
        return t;
    }

    private static ValueInfoProto Value(string name, TensorProto.Types.DataType type, params object[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (object d in dims)
            shape.Dim.Add(d is string s ? new TensorShapeProto.Types.Dimension { DimParam = s } : new TensorShapeProto.Types.Dimension { DimValue = (int)d });
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = shape } } };
    }

    private static NodeProto Node(string op, string[] inputs, string output, params AttributeProto[] attrs)
    {
        var n = new NodeProto { OpType = op, Name = output + "_node" };
        n.Input.AddRange(inputs);
        n.Output.Add(output);
        n.Attribute.AddRange(attrs);
        return n;
    }

    /// <summary>
    /// Token states = Gather(table, input_ids). With <paramref name="pooledOutput"/>: inputs input_ids only, outputs
    /// token_embeddings [B,T,D] then sentence_embedding = ReduceMean over T (padding included). Otherwise: inputs
    /// input_ids, attention_mask, token_type_ids (used, times zero), one output last_hidden_state [B,T,D].
    /// </summary>
    private static void WriteModel(string dir, float[] table, bool pooledOutput)
    {
        const TensorProto.Types.DataType F = TensorProto.Types.DataType.Float, I = TensorProto.Types.DataType.Int64;
        var g = new GraphProto { Name = "tiny_embedder" };
        var t = Tensor("table", F, Vocab.Length, D);
        t.FloatData.AddRange(table);
        g.Initializer.Add(t);
        g.Input.Add(Value("input_ids", I, "batch", "seq"));
        if (pooledOutput)
        {
            g.Node.Add(Node("Gather", ["table", "input_ids"], "token_embeddings"));
            var axes = new AttributeProto { Name = "axes", Type = AttributeProto.Types.AttributeType.Ints };
            axes.Ints.Add(1);
            g.Node.Add(Node("ReduceMean", ["token_embeddings"], "sentence_embedding", axes,
                new AttributeProto { Name = "keepdims", Type = AttributeProto.Types.AttributeType.Int, I = 0 }));
            g.Output.Add(Value("token_embeddings", F, "batch", "seq", D));
            g.Output.Add(Value("sentence_embedding", F, "batch", D));
        }
        else
        {
            g.Input.Add(Value("attention_mask", I, "batch", "seq"));
            g.Input.Add(Value("token_type_ids", I, "batch", "seq"));
            var zero = Tensor("zero", F);
            zero.FloatData.Add(0f);
            g.Initializer.Add(zero);
            var axis = Tensor("last_axis", I, 1);
            axis.Int64Data.Add(-1);
            g.Initializer.Add(axis);
            g.Node.Add(Node("Gather", ["table", "input_ids"], "gathered"));
            g.Node.Add(Node("Add", ["attention_mask", "token_type_ids"], "mask_plus_types"));
            g.Node.Add(Node("Cast", ["mask_plus_types"], "mask_f", new AttributeProto { Name = "to", Type = AttributeProto.Types.AttributeType.Int, I = (long)F }));
            g.Node.Add(Node("Unsqueeze", ["mask_f", "last_axis"], "mask_3d"));
            g.Node.Add(Node("Mul", ["mask_3d", "zero"], "zeros"));
            g.Node.Add(Node("Add", ["gathered", "zeros"], "last_hidden_state"));
            g.Output.Add(Value("last_hidden_state", F, "batch", "seq", D));
        }
        var model = new ModelProto { IrVersion = 8, ProducerName = "Raft.Pipeline.Tests", Graph = g };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 17 });
        using (var f = File.Create(Path.Combine(dir, "model.onnx"))) model.WriteTo(f);
        File.WriteAllLines(Path.Combine(dir, "vocab.txt"), Vocab);
    }

    private static double[] Mean(float[] table, IEnumerable<int> ids)
    {
        var sum = new double[D];
        int n = 0;
        foreach (int id in ids) { for (int k = 0; k < D; k++) sum[k] += table[id * D + k]; n++; }
        return sum.Select(x => x / n).ToArray();
    }

    private static double Cos01(double[] a, double[] b)
    {
        double dot = a.Zip(b, (x, y) => x * y).Sum();
        double c = dot / Math.Sqrt(a.Sum(x => x * x)) / Math.Sqrt(b.Sum(x => x * x));
        return Math.Max(0, c);
    }

    private static float[] RandomTable(Random rng) =>
        Enumerable.Range(0, Vocab.Length * D).Select(_ => (float)(rng.NextDouble() * 2 - 0.7)).ToArray();

    [Fact]
    public void Mean_pools_token_states_over_the_attention_mask()
    {
        using var dir = new TempDir();
        var rng = new Random();
        var table = RandomTable(rng);
        WriteModel(dir.Path, table, pooledOutput: false);
        using var sim = new OnnxEmbeddingSimilarity(dir.Path);
        double expected = Cos01(Mean(table, IdsA), Mean(table, IdsB)); // padding of A excluded
        Assert.Equal(expected, sim.Score(TextA, TextB), 5);
        Assert.Equal(expected, sim.Score(TextB, TextA), 5);
        Assert.Equal(1.0, sim.Score(TextA, TextA.ToUpperInvariant()), 5);

        var e = sim.Embed([TextA, TextB, "cat"]);
        Assert.Equal(3, e.Length);
        foreach (var v in e) Assert.Equal(1.0, Math.Sqrt(v.Sum(x => (double)x * x)), 5);
    }

    [Fact]
    public void Prefers_the_sentence_embedding_output()
    {
        using var dir = new TempDir();
        var rng = new Random();
        var table = RandomTable(rng);
        WriteModel(dir.Path, table, pooledOutput: true);
        using var sim = new OnnxEmbeddingSimilarity(dir.Path);
        // the model's own pooling averages A's two padding positions ([PAD] = 0) too
        var paddedA = IdsA.Concat([0, 0]);
        double expected = Cos01(Mean(table, paddedA), Mean(table, IdsB));
        Assert.Equal(expected, sim.Score(TextA, TextB), 5);
    }

    [Fact]
    public void Missing_files_are_named()
    {
        using var dir = new TempDir();
        var e1 = Assert.Throws<FileNotFoundException>(() => new OnnxEmbeddingSimilarity(dir.Path));
        Assert.Contains(Path.Combine(dir.Path, "vocab.txt"), e1.Message);
        File.WriteAllLines(dir.File("vocab.txt"), Vocab);
        var e2 = Assert.Throws<FileNotFoundException>(() => new OnnxEmbeddingSimilarity(dir.Path));
        Assert.Contains(Path.Combine(dir.Path, "model.onnx"), e2.Message);
        string missing = dir.File("nope");
        var e3 = Assert.Throws<DirectoryNotFoundException>(() => new OnnxEmbeddingSimilarity(missing));
        Assert.Contains(missing, e3.Message);
    }

    [Fact]
    public void Disposed_instance_refuses_work()
    {
        using var dir = new TempDir();
        WriteModel(dir.Path, RandomTable(new Random()), pooledOutput: false);
        var sim = new OnnxEmbeddingSimilarity(dir.Path);
        sim.Dispose();
        Assert.Throws<ObjectDisposedException>(() => sim.Score("a", "b"));
    }
}
