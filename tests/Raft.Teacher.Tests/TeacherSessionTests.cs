using Raft.Kernels;
using Google.Protobuf;
using Onnx;
using static Raft.Teacher.Tests.TestModels;

namespace Raft.Teacher.Tests;

public class TeacherSessionTests
{
    private static string ExportTiny(TempDirectory dir, bool tied = false, bool bias = false)
    {
        var config = Tiny(tied, bias);
        OnnxExporter.Export(config, RandomParameters(config, seed: 3), dir.Path);
        return Path.Combine(dir.Path, "model.onnx");
    }

    private static void Rewrite(string path, Action<ModelProto> edit)
    {
        var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(path));
        edit(model);
        File.WriteAllBytes(path, model.ToByteArray());
    }

    [Fact]
    public void NotAnOnnxFileIsAClearError()
    {
        using var dir = new TempDirectory();
        string path = Path.Combine(dir.Path, "model.onnx");
        File.WriteAllText(path, "this is not a protobuf model, just some text\n");
        var e = Assert.Throws<InvalidDataException>(() => TeacherSession.Open(dir.Path, Cpu()));
        Assert.Contains(path, e.Message);
        Assert.Contains("cannot load", e.Message);
    }

    [Fact]
    public void MissingDirectoryOrFileIsAClearError()
    {
        using var dir = new TempDirectory();
        var e = Assert.Throws<FileNotFoundException>(() => TeacherSession.Open(dir.Path, Cpu()));
        Assert.Contains("model.onnx", e.Message);
    }

    [Fact]
    public void UnexpectedInputIsNamed()
    {
        using var dir = new TempDirectory();
        string path = ExportTiny(dir);
        Rewrite(path, m =>
        {
            // the graph reads "positions" instead of position_ids: a valid model with an input no known signature has
            m.Graph.Input.Single(i => i.Name == "position_ids").Name = "positions";
            foreach (var n in m.Graph.Node)
                for (int i = 0; i < n.Input.Count; i++)
                    if (n.Input[i] == "position_ids") n.Input[i] = "positions";
        });
        var e = Assert.Throws<InvalidDataException>(() => TeacherSession.Open(dir.Path, Cpu()));
        Assert.Contains("input 'positions' is not one the teacher can feed", e.Message);
        Assert.Contains("position_ids", e.Message);
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void UnexpectedOutputIsNamed()
    {
        using var dir = new TempDirectory();
        string path = ExportTiny(dir);
        Rewrite(path, m =>
        {
            // an extra output (the final hidden state): the teacher reads logits and present.* only
            m.Graph.Output.Add(new ValueInfoProto { Name = "final_norm", Type = m.Graph.Output.Single(o => o.Name == "logits").Type.Clone() });
            m.Graph.Output.Last().Type.TensorType.Shape.Dim[2].DimValue = 16;
        });
        var e = Assert.Throws<InvalidDataException>(() => TeacherSession.Open(dir.Path, Cpu()));
        Assert.Contains("output 'final_norm' is not one the teacher reads", e.Message);
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void NonFloatLogitsAreRejected()
    {
        using var dir = new TempDirectory();
        string path = ExportTiny(dir);
        Rewrite(path, m =>
        {
            var last = m.Graph.Node.Single(n => n.Output.Contains("logits"));
            last.Output[0] = "logits_float";
            var cast = new NodeProto { OpType = "Cast", Name = "to_double" };
            cast.Input.Add("logits_float");
            cast.Output.Add("logits");
            cast.Attribute.Add(new AttributeProto { Name = "to", Type = AttributeProto.Types.AttributeType.Int, I = (long)TensorProto.Types.DataType.Double });
            m.Graph.Node.Add(cast);
            m.Graph.Output.Single(o => o.Name == "logits").Type.TensorType.ElemType = (int)TensorProto.Types.DataType.Double;
        });
        var e = Assert.Throws<InvalidDataException>(() => TeacherSession.Open(dir.Path, Cpu()));
        Assert.Contains("'logits'", e.Message);
        Assert.Contains("Double", e.Message);
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void VocabularyMismatchNamesBothSizes()
    {
        using var dir = new TempDirectory();
        string path = ExportTiny(dir);
        var e = Assert.Throws<InvalidDataException>(() => TeacherSession.Open(dir.Path, Cpu() with { ExpectedVocabSize = 12 }));
        Assert.Contains("11", e.Message);
        Assert.Contains("12", e.Message);
        Assert.Contains(path, e.Message);
        using var ok = TeacherSession.Open(dir.Path, Cpu() with { ExpectedVocabSize = 11 });
        Assert.Equal(11, ok.VocabSize);
    }

    [Fact]
    public void ConfigBesideTheModelMustAgree()
    {
        using var dir = new TempDirectory();
        string path = ExportTiny(dir);
        string config = Path.Combine(dir.Path, "config.json");
        File.WriteAllText(config, Tiny(false, false, vocab: 13).ToJson());
        var e = Assert.Throws<InvalidDataException>(() => TeacherSession.Open(dir.Path, Cpu()));
        Assert.Contains("11", e.Message);
        Assert.Contains("vocab_size 13", e.Message);
        Assert.Contains(path, e.Message);
        File.Delete(config);
        using var noConfig = TeacherSession.Open(dir.Path, Cpu());
        Assert.Null(noConfig.Config);
    }

    [Fact]
    public void CpuProviderIsLoggedOnce()
    {
        using var dir = new TempDirectory();
        ExportTiny(dir);
        var log = new List<string>();
        using var teacher = TeacherSession.Open(dir.Path, Cpu(log));
        Assert.Equal("CPU", teacher.Provider);
        Assert.Null(teacher.FallbackReason);
        Assert.Single(log);
        Assert.Contains("running on CPU", log[0]);
    }

    [Theory]
    [InlineData(ComputeDevice.Cuda)]
    [InlineData(ComputeDevice.Auto)]
    public void CudaRunsOrFallsBackToCpuWithTheReason(ComputeDevice provider)
    {
        using var dir = new TempDirectory();
        ExportTiny(dir);
        var log = new List<string>();
        using var teacher = TeacherSession.Open(dir.Path, new TeacherOptions { Provider = provider, Log = log.Add });
        Assert.Single(log);
        if (teacher.Provider == "CUDA")
        {
            Assert.Null(teacher.FallbackReason);
            Assert.Contains("running on CUDA", log[0]);
        }
        else
        {
            Assert.Equal("CPU", teacher.Provider);
            Assert.False(string.IsNullOrWhiteSpace(teacher.FallbackReason));
            Assert.Contains("running on CPU", log[0]);
            Assert.Contains(teacher.FallbackReason!, log[0]);
        }
        // either way it computes
        Assert.Equal(2 * 3 * 11, teacher.Forward([1, 2, 3, 4, 5, 6], 2, 3).Length);
    }

    [Theory]
    [InlineData(ComputeDevice.CudaC, "Provider = cuda-c")]
    [InlineData((ComputeDevice)9, "Provider = 9")]
    public void CudaCIsLossKernelsNotAnExecutionProviderAndIsRefused(ComputeDevice provider, string named)
    {
        using var dir = new TempDirectory(); // refused before the folder is even looked at
        var log = new List<string>();
        var e = Assert.Throws<ArgumentException>(() => TeacherSession.Open(dir.Path, new TeacherOptions { Provider = provider, Log = log.Add }));
        Assert.Equal("options", e.ParamName);
        Assert.Contains(named, e.Message);
        Assert.Contains("auto, cpu or cuda", e.Message);
        Assert.Empty(log);
    }

    [Fact]
    public void CudaWithoutFallbackEitherRunsOnCudaOrFailsClearly()
    {
        using var dir = new TempDirectory();
        ExportTiny(dir);
        TeacherSession? teacher = null;
        try
        {
            teacher = TeacherSession.Open(dir.Path, new TeacherOptions { Provider = ComputeDevice.Cuda, AllowCpuFallback = false, Log = _ => { } });
            Assert.Equal("CUDA", teacher.Provider);
        }
        catch (InvalidOperationException e)
        {
            Assert.Contains("CUDA", e.Message);
            Assert.Contains("fallback is disallowed", e.Message);
        }
        finally
        {
            teacher?.Dispose();
        }
    }

    [Fact]
    public void BadCallsAreRejected()
    {
        using var dir = new TempDirectory();
        ExportTiny(dir);
        using var teacher = TeacherSession.Open(dir.Path, Cpu());
        Assert.Contains("inputIds", Assert.Throws<ArgumentException>(() => teacher.Forward([1, 2, 3], 2, 2)).Message);
        Assert.Contains("= 11", Assert.Throws<ArgumentException>(() => teacher.Forward([1, 11], 1, 2)).Message);
        Assert.Contains("attentionMask", Assert.Throws<ArgumentException>(() => teacher.Forward([1, 2], 1, 2, attentionMask: [1])).Message);
        Assert.Contains("max_position_embeddings", Assert.Throws<ArgumentException>(() => teacher.Forward([1, 2], 1, 2, positionIds: [0, 64])).Message);
        using var cache = teacher.CreateCache(2);
        Assert.Contains("2 sequences", Assert.Throws<ArgumentException>(() => teacher.Forward([1], 1, 1, cache)).Message);
        teacher.Dispose();
        Assert.Throws<ObjectDisposedException>(() => teacher.Forward([1], 1, 1));
    }

    [Fact]
    public void MissingInputListsThePresentOnes()
    {
        using var dir = new TempDirectory();
        string path = ExportTiny(dir);
        Rewrite(path, m =>
        {
            m.Graph.Input.Single(i => i.Name == "input_ids").Name = "ids_renamed";
            foreach (var n in m.Graph.Node)
                for (int i = 0; i < n.Input.Count; i++)
                    if (n.Input[i] == "input_ids") n.Input[i] = "ids_renamed";
        });
        var e = Assert.Throws<InvalidDataException>(() => TeacherSession.Open(dir.Path, Cpu()));
        Assert.True(e.Message.Contains("no input 'input_ids'", StringComparison.Ordinal), e.Message);
        Assert.Contains("it has: ids_renamed, attention_mask, position_ids, past_key_values.0.key", e.Message);
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void UnsupportedInputElementTypeIsNamed()
    {
        using var dir = new TempDirectory();
        string path = ExportTiny(dir);
        Rewrite(path, m =>
        {
            // input_ids declared int32 and cast to int64 inside: a valid model with an element type the teacher does not feed
            foreach (var n in m.Graph.Node)
                for (int i = 0; i < n.Input.Count; i++)
                    if (n.Input[i] == "input_ids") n.Input[i] = "input_ids_i64";
            var cast = new NodeProto { OpType = "Cast", Name = "ids_to_int64" };
            cast.Input.Add("input_ids");
            cast.Output.Add("input_ids_i64");
            cast.Attribute.Add(new AttributeProto { Name = "to", Type = AttributeProto.Types.AttributeType.Int, I = (long)TensorProto.Types.DataType.Int64 });
            m.Graph.Node.Insert(0, cast);
            m.Graph.Input.Single(i => i.Name == "input_ids").Type.TensorType.ElemType = (int)TensorProto.Types.DataType.Int32;
        });
        var e = Assert.Throws<InvalidDataException>(() => TeacherSession.Open(dir.Path, Cpu()));
        Assert.Contains("input 'input_ids' must be a Int64 tensor, is Int32", e.Message);
        Assert.Contains(path, e.Message);
    }
}
