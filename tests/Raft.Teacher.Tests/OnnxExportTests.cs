using Raft.Model;
using static Raft.Teacher.Tests.TestModels;

namespace Raft.Teacher.Tests;

public class OnnxExportTests
{
    public static IEnumerable<object[]> TiedBias() => [[false, false], [true, false], [false, true], [true, true]];

    [Theory]
    [MemberData(nameof(TiedBias))]
    public void ExportedModelGivesTheEngineLogits(bool tied, bool bias)
    {
        var config = Tiny(tied, bias);
        var weights = RandomParameters(config, seed: 11 + (tied ? 1 : 0) + (bias ? 2 : 0));
        var model = new LlamaModel(config, weights);
        const int batch = 3, seq = 7;
        int[] tokens = RandomTokens(batch * seq, config.VocabSize, seed: 5);
        float[] expected = model.Forward(tokens, batch, seq);

        using var dir = new TempDirectory();
        OnnxExporter.Export(config, weights, dir.Path);
        Assert.True(File.Exists(Path.Combine(dir.Path, "model.onnx")));
        Assert.False(File.Exists(Path.Combine(dir.Path, "model.onnx.data")));
        Assert.Equal(config, ModelConfig.Load(Path.Combine(dir.Path, "config.json")) with { EosTokenIdRaw = config.EosTokenIdRaw });
        using var teacher = TeacherSession.Open(dir.Path, Cpu());
        Assert.Equal((2, 2, 4, 11), (teacher.NumLayers, teacher.KvHeads, teacher.HeadDim, teacher.VocabSize));
        float[] actual = teacher.Forward(Array.ConvertAll(tokens, t => (long)t), batch, seq);
        Assert.True(Tolerances.MaxRelErrorFp32(actual, expected) < 1e-4, $"relative error {Tolerances.MaxRelErrorFp32(actual, expected)}");
    }

    [Fact]
    public void HeadDimOverrideAndSingleKvHead()
    {
        // head_dim 6 ≠ hidden / heads, 4 query heads over 1 KV head, RoPE base 500000
        var config = Tiny(false, true) with { HeadDimOverride = 6, NumKeyValueHeads = 1, RopeTheta = 500000, RmsNormEps = 1e-5 };
        var weights = RandomParameters(config, seed: 61);
        int[] tokens = RandomTokens(2 * 5, config.VocabSize, seed: 9);
        float[] expected = new LlamaModel(config, weights).Forward(tokens, 2, 5);
        using var dir = new TempDirectory();
        OnnxExporter.Export(config, weights, dir.Path);
        using var teacher = TeacherSession.Open(dir.Path, Cpu());
        Assert.Equal((1, 6), (teacher.KvHeads, teacher.HeadDim));
        float[] actual = teacher.Forward(Array.ConvertAll(tokens, t => (long)t), 2, 5);
        Assert.True(Tolerances.MaxRelErrorFp32(actual, expected) < 1e-4, $"relative error {Tolerances.MaxRelErrorFp32(actual, expected)}");
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, true)]
    public void PrefillThenDecodeEqualsTheFullSequence(bool tied, bool bias)
    {
        var config = Tiny(tied, bias);
        AssertKvDecodeEqualsFullForward(config, RandomParameters(config, seed: 21), batch: 2, seq: 9, prompt: 4, $"tied {tied}, bias {bias}");
    }

    [Fact]
    public void AttentionMaskHidesPaddedKeys()
    {
        // a left-padded row (mask 0 on the pads, positions counted from the first real token) gives the logits of
        // the unpadded sequence
        var config = Tiny(false, true);
        var weights = RandomParameters(config, seed: 31);
        int[] real = RandomTokens(5, config.VocabSize, seed: 2);
        float[] expected = new LlamaModel(config, weights).Forward(real, 1, 5);
        using var dir = new TempDirectory();
        OnnxExporter.Export(config, weights, dir.Path);
        using var teacher = TeacherSession.Open(dir.Path, Cpu());
        long[] ids = [3, 3, .. real.Select(t => (long)t)];
        float[] got = teacher.Forward(ids, 1, 7, attentionMask: [0, 0, 1, 1, 1, 1, 1], positionIds: [0, 0, 0, 1, 2, 3, 4]);
        Assert.True(Tolerances.MaxRelErrorFp32(got.AsSpan(2 * config.VocabSize), expected) < 1e-4);
    }

    [Fact]
    public void ExternalDataRoundTrip()
    {
        var config = Tiny(false, true);
        var weights = RandomParameters(config, seed: 41);
        int[] tokens = RandomTokens(2 * 6, config.VocabSize, seed: 3);
        float[] expected = new LlamaModel(config, weights).Forward(tokens, 2, 6);
        using var dir = new TempDirectory();
        OnnxExporter.Export(config, weights, dir.Path, externalDataThreshold: 1024);
        string data = Path.Combine(dir.Path, "model.onnx.data"), onnx = Path.Combine(dir.Path, "model.onnx");
        Assert.True(File.Exists(data));
        long weightBytes = weights.ValueCount * 4;
        Assert.True(new FileInfo(data).Length >= weightBytes, "the weights are in the data file");
        byte[] onnxBytes = File.ReadAllBytes(onnx), dataBytes = File.ReadAllBytes(data);
        foreach (var t in weights.Tensors)
        {
            var raw = System.Runtime.InteropServices.MemoryMarshal.AsBytes(t.Data.AsSpan());
            Assert.True(onnxBytes.AsSpan().IndexOf(raw) < 0, $"{t.Name} is inline in model.onnx");
            Assert.True(dataBytes.AsSpan().IndexOf(raw) >= 0, $"{t.Name} is not in model.onnx.data");
        }
        Assert.Empty(Directory.GetFiles(dir.Path, "*.tmp"));
        using (var teacher = TeacherSession.Open(dir.Path, Cpu()))
        {
            float[] got = teacher.Forward(Array.ConvertAll(tokens, t => (long)t), 2, 6);
            Assert.True(Tolerances.MaxRelErrorFp32(got, expected) < 1e-4);
        }
        // exporting again below the threshold writes inline weights and drops the stale data file
        OnnxExporter.Export(config, weights, dir.Path);
        Assert.False(File.Exists(data));
        using var again = TeacherSession.Open(dir.Path, Cpu());
        Assert.True(Tolerances.MaxRelErrorFp32(again.Forward(Array.ConvertAll(tokens, t => (long)t), 2, 6), expected) < 1e-4);
    }

    [Fact]
    public void SignatureIsOptimumsWithDynamicAxes()
    {
        var config = Tiny(false, false);
        using var dir = new TempDirectory();
        OnnxExporter.Export(config, RandomParameters(config, seed: 2), dir.Path);
        var model = Onnx.ModelProto.Parser.ParseFrom(File.ReadAllBytes(Path.Combine(dir.Path, "model.onnx")));
        Assert.Equal([("", 17L)], model.OpsetImport.Select(o => (o.Domain, o.Version)));
        Assert.All(model.Graph.Node, n => Assert.Equal("", n.Domain));
        string Dims(Google.Protobuf.Collections.RepeatedField<Onnx.ValueInfoProto> list, string name) => string.Join(",",
            list.Single(v => v.Name == name).Type.TensorType.Shape.Dim.Select(d => d.HasDimParam ? d.DimParam : d.DimValue.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        var g = model.Graph;
        Assert.Equal(["input_ids", "attention_mask", "position_ids", "past_key_values.0.key", "past_key_values.0.value", "past_key_values.1.key", "past_key_values.1.value"],
            g.Input.Select(i => i.Name));
        Assert.Equal(["logits", "present.0.key", "present.0.value", "present.1.key", "present.1.value"], g.Output.Select(o => o.Name));
        Assert.Equal("batch_size,sequence_length", Dims(g.Input, "input_ids"));
        Assert.Equal("batch_size,total_sequence_length", Dims(g.Input, "attention_mask"));
        Assert.Equal("batch_size,2,past_sequence_length,4", Dims(g.Input, "past_key_values.1.value"));
        Assert.Equal("batch_size,sequence_length,11", Dims(g.Output, "logits"));
        Assert.Equal("batch_size,2,total_sequence_length,4", Dims(g.Output, "present.0.key"));
        // one session serves several batch sizes and lengths
        using var teacher = TeacherSession.Open(dir.Path, Cpu());
        var engine = new LlamaModel(config, RandomParameters(config, seed: 2));
        foreach (var (b, t) in new[] { (1, 1), (3, 5), (2, 12) })
        {
            int[] tokens = RandomTokens(b * t, 11, seed: b * 100 + t);
            Assert.True(Tolerances.MaxRelErrorFp32(teacher.Forward(Array.ConvertAll(tokens, x => (long)x), b, t), engine.Forward(tokens, b, t)) < 1e-4);
        }
    }

    [Fact]
    public void MissingWeightIsRejectedBeforeWriting()
    {
        var config = Tiny(false, false);
        var all = RandomParameters(config, seed: 1);
        var partial = new TensorSet();
        foreach (var t in all.Tensors) if (t.Name != "model.layers.1.mlp.up_proj.weight") partial.Add(t);
        using var dir = new TempDirectory();
        var e = Assert.Throws<ArgumentException>(() => OnnxExporter.Export(config, partial, dir.Path));
        Assert.Contains("model.layers.1.mlp.up_proj.weight", e.Message);
        Assert.False(File.Exists(Path.Combine(dir.Path, "model.onnx")));
    }
}
