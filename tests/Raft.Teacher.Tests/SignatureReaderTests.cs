using Microsoft.ML.OnnxRuntime.Tensors;
using Onnx;
using Raft.Model;
using static Raft.Teacher.Tests.TestModels;
using Variant = Raft.Teacher.Tests.SignatureVariantTests.Variant;

namespace Raft.Teacher.Tests;

/// <summary>
/// What the signature reader refuses and how a session honours (or refuses) what a graph lacks; genai_config.json's
/// names, checks and refusals; the fp16/bf16 boundary conversion against its field-by-field reference.
/// </summary>
public class SignatureReaderTests
{
    private static ModelConfig Config() => Tiny(tied: true, bias: false, vocab: 23) with { HiddenSize = 64, IntermediateSize = 48 };

    private static string Write(TempDirectory dir, Variant v, Action<ModelProto>? edit = null)
    {
        var c = Config();
        SignatureVariantTests.Write(v, c, RandomParameters(c, seed: 9), dir.Path);
        string file = v == Variant.MergedDecoder ? TeacherSession.MergedDecoderFile : OnnxExporter.ModelFile;
        if (edit != null)
        {
            var m = ModelProto.Parser.ParseFrom(File.ReadAllBytes(Path.Combine(dir.Path, file)));
            edit(m);
            SignatureVariants.Save(m, dir.Path, file);
        }
        return Path.Combine(dir.Path, file);
    }

    [Theory]
    [InlineData(Variant.OptimumShuffled, "text-generation-with-past (attention_mask, position_ids)", "Float", "Float")]
    [InlineData(Variant.OptimumNoPositionIds, "text-generation-with-past (attention_mask)", "Float", "Float")]
    [InlineData(Variant.MergedDecoder, "merged decoder (attention_mask, position_ids, use_cache_branch)", "Float", "Float")]
    [InlineData(Variant.Fp16KvAndLogits, "text-generation-with-past (attention_mask, position_ids)", "Float16", "Float16")]
    [InlineData(Variant.GenAiSeqlensInputs, "GroupQueryAttention (seqlens_k, total_sequence_length)", "Float", "Float")]
    [InlineData(Variant.GenAiFromMask, "text-generation-with-past (attention_mask)", "Float", "Float")]
    [InlineData(Variant.GenAiBf16, "GroupQueryAttention (seqlens_k, total_sequence_length)", "BFloat16", "BFloat16")]
    public void TheSignatureIsReadFromTheGraph(Variant v, string kind, string kv, string logits)
    {
        using var dir = new TempDirectory();
        string path = Write(dir, v);
        using var s = TeacherSession.Open(dir.Path, Cpu());
        Assert.Equal(path, s.ModelPath);
        // the shuffled graph lists its inputs in its own order; Describe names them in that order too
        string described = s.Signature.Describe();
        if (v != Variant.OptimumShuffled) Assert.StartsWith(kind, described);
        Assert.Equal(Enum.Parse<TensorElementType>(kv), s.Signature.KvType);
        Assert.Equal(Enum.Parse<TensorElementType>(logits), s.Signature.LogitsType);
        Assert.Equal(2, s.NumLayers);
        Assert.Equal(2, s.KvHeads);
        Assert.Equal(16, s.HeadDim);
        Assert.Equal(v is Variant.GenAiSeqlensInputs or Variant.GenAiFromMask or Variant.GenAiBf16, s.ChunksNeedBatchOne);
        Assert.Equal(v is Variant.GenAiSeqlensInputs or Variant.GenAiFromMask or Variant.GenAiBf16, s.GenAi is not null);
    }

    [Fact]
    public void MixedKvElementTypesAreRefused()
    {
        using var dir = new TempDirectory();
        string path = Write(dir, Variant.OptimumShuffled, m =>
        {
            // layer 1's value cache alone in fp16
            var input = m.Graph.Input.Single(i => i.Name == "past_key_values.1.value");
            foreach (var n in m.Graph.Node) for (int i = 0; i < n.Input.Count; i++) if (n.Input[i] == input.Name) n.Input[i] = "v1.f32";
            input.Type.TensorType.ElemType = (int)TensorProto.Types.DataType.Float16;
            var cast = new NodeProto { OpType = "Cast", Name = "v1cast" };
            cast.Input.Add(input.Name); cast.Output.Add("v1.f32");
            cast.Attribute.Add(new AttributeProto { Name = "to", Type = AttributeProto.Types.AttributeType.Int, I = (long)TensorProto.Types.DataType.Float });
            m.Graph.Node.Insert(0, cast);
        });
        var e = Assert.Throws<InvalidDataException>(() => TeacherSession.Open(dir.Path, Cpu()));
        Assert.Contains("'past_key_values.1.value' is Float16", e.Message);
        Assert.Contains("one element type", e.Message);
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void SeqlensWithoutTotalLengthIsRefused()
    {
        using var dir = new TempDirectory();
        string path = Write(dir, Variant.GenAiSeqlensInputs, m =>
        {
            // total_sequence_length becomes a constant of the graph instead of an input
            m.Graph.Input.Remove(m.Graph.Input.Single(i => i.Name == "total_sequence_length"));
            var t = new TensorProto { Name = "total_sequence_length", DataType = (int)TensorProto.Types.DataType.Int32 };
            t.Int32Data.Add(1);
            m.Graph.Initializer.Add(t);
        });
        var e = Assert.Throws<InvalidDataException>(() => TeacherSession.Open(dir.Path, Cpu()));
        Assert.Contains("input 'seqlens_k' without 'total_sequence_length'", e.Message);
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void AFixedPastAxisIsRefused()
    {
        using var dir = new TempDirectory();
        string path = Write(dir, Variant.OptimumShuffled, m =>
        {
            foreach (var i in m.Graph.Input.Where(i => i.Name.StartsWith("past_key_values.", StringComparison.Ordinal)))
                i.Type.TensorType.Shape.Dim[2] = new TensorShapeProto.Types.Dimension { DimValue = 64 };
        });
        var e = Assert.Throws<InvalidDataException>(() => TeacherSession.Open(dir.Path, Cpu()));
        Assert.Contains("axis 2 must be the dynamic past length", e.Message);
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void SymbolicKvAxesAreTakenFromTheConfigOrRefused()
    {
        using var dir = new TempDirectory();
        string path = Write(dir, Variant.OptimumShuffled, m =>
        {
            foreach (var v in m.Graph.Input.Concat(m.Graph.Output).Where(i => i.Name.Contains("key") || i.Name.Contains("value")))
            {
                v.Type.TensorType.Shape.Dim[1] = new TensorShapeProto.Types.Dimension { DimParam = "num_kv_heads" };
                v.Type.TensorType.Shape.Dim[3] = new TensorShapeProto.Types.Dimension { DimParam = "head_dim" };
            }
        });
        using (var s = TeacherSession.Open(dir.Path, Cpu()))
        {
            Assert.Equal(2, s.KvHeads);
            Assert.Equal(16, s.HeadDim);
            Assert.Equal(23, s.Forward([1, 2, 3], 1, 3).Length / 3);
        }
        File.Delete(Path.Combine(dir.Path, Checkpoint.ConfigFile));
        var e = Assert.Throws<InvalidDataException>(() => TeacherSession.Open(dir.Path, Cpu()));
        Assert.Contains("must have fixed kv_heads and head_dim", e.Message);
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void WhatAGraphDerivesItselfCanOnlyBeAskedForByDefault()
    {
        using var dir = new TempDirectory();
        Write(dir, Variant.OptimumNoPositionIds);
        using (var s = TeacherSession.Open(dir.Path, Cpu()))
        {
            // the defaults spelled out are accepted and equal to leaving them out
            Assert.Equal(s.Forward([1, 2, 3], 1, 3), s.Forward([1, 2, 3], 1, 3, positionIds: [0, 1, 2]));
            var e = Assert.Throws<ArgumentException>(() => s.Forward([1, 2, 3], 1, 3, positionIds: [0, 0, 1]));
            Assert.Equal("positionIds", e.ParamName);
            Assert.Contains("has no position_ids input", e.Message);
            // a mask is still fed (the graph has attention_mask): a left-padded row is accepted
            Assert.Equal(3 * 23, s.Forward([1, 2, 3], 1, 3, attentionMask: [0, 1, 1]).Length);
        }
        using var gdir = new TempDirectory();
        Write(gdir, Variant.GenAiSeqlensInputs);
        using var g = TeacherSession.Open(gdir.Path, Cpu());
        var m = Assert.Throws<ArgumentException>(() => g.Forward([1, 2, 3], 1, 3, attentionMask: [0, 1, 1]));
        Assert.Equal("attentionMask", m.ParamName);
        Assert.Contains("all-ones", m.Message);
        using var cache = g.CreateCache(2);
        g.Forward([1, 2, 3, 4], 2, 2, cache);
        Assert.Equal(2, g.Forward([5, 6], 2, 1, cache).Length / 23); // one position per row after a past: fine
        var b = Assert.Throws<ArgumentException>(() => g.Forward([1, 2, 3, 4], 2, 2, cache));
        Assert.Equal("batch", b.ParamName);
        Assert.Contains("GroupQueryAttention", b.Message);
        // the model builder's graph takes attention_mask but turns it into seqlens_k: a left-padded mask is refused too
        using var fdir = new TempDirectory();
        Write(fdir, Variant.GenAiFromMask);
        using var f = TeacherSession.Open(fdir.Path, Cpu());
        Assert.True(f.Signature.Has(TeacherInputRole.AttentionMask));
        Assert.Contains("all ones", Assert.Throws<ArgumentException>(() => f.Forward([1, 2, 3], 1, 3, attentionMask: [0, 1, 1])).Message);
        Assert.Equal(3 * 23, f.Forward([1, 2, 3], 1, 3, attentionMask: [1, 1, 1]).Length);
    }

    [Fact]
    public void GenAiNamesTemplatesAndFileAreHonoured()
    {
        var c = Config();
        var weights = RandomParameters(c, seed: 12);
        using var dir = new TempDirectory();
        SignatureVariantTests.Write(Variant.GenAiSeqlensInputs, c, weights, dir.Path);
        // rename the graph's cache to another template and the file to decoder.onnx; genai_config.json says so
        var m = SignatureVariants.Load(dir.Path);
        void Rename(string from, string to)
        {
            foreach (var v in m.Graph.Input.Concat(m.Graph.Output)) if (v.Name == from) v.Name = to;
            foreach (var n in m.Graph.Node)
            {
                for (int i = 0; i < n.Input.Count; i++) if (n.Input[i] == from) n.Input[i] = to;
                for (int i = 0; i < n.Output.Count; i++) if (n.Output[i] == from) n.Output[i] = to;
            }
        }
        for (int l = 0; l < c.NumHiddenLayers; l++)
        {
            Rename($"past_key_values.{l}.key", $"past.{l}.k"); Rename($"past_key_values.{l}.value", $"past.{l}.v");
            Rename($"present.{l}.key", $"present_k_{l}"); Rename($"present.{l}.value", $"present_v_{l}");
        }
        File.Delete(Path.Combine(dir.Path, OnnxExporter.ModelFile));
        SignatureVariants.Save(m, dir.Path, "decoder.onnx");
        string json = SignatureVariantTests.GenAiJson(c)
            .Replace("\"model.onnx\"", "\"decoder.onnx\"")
            .Replace("past_key_values.%d.key", "past.%d.k").Replace("past_key_values.%d.value", "past.%d.v")
            .Replace("present.%d.key", "present_k_%d").Replace("present.%d.value", "present_v_%d");
        File.WriteAllText(Path.Combine(dir.Path, GenAiConfig.FileName), json);
        using var s = TeacherSession.Open(dir.Path, Cpu());
        Assert.Equal(Path.Combine(dir.Path, "decoder.onnx"), s.ModelPath);
        Assert.Equal(["past.0.k", "past.0.v", "past.1.k", "past.1.v"], s.Signature.Past);
        Assert.Equal(c.MaxPositionEmbeddings, s.MaxPositions);
        float[] want = new LlamaModel(c, weights).Forward([3, 1, 4, 1, 5], 1, 5);
        Assert.True(Tolerances.MaxRelErrorFp32(s.Forward([3, 1, 4, 1, 5], 1, 5), want) < 1e-5);
        // a position at context_length is refused as one at max_position_embeddings is
        Assert.Contains("outside 0..63 (context_length)", Assert.Throws<ArgumentException>(() => s.Forward(new long[c.MaxPositionEmbeddings + 1], 1, c.MaxPositionEmbeddings + 1)).Message);
    }

    [Theory]
    [InlineData("num_hidden_layers\": 2", "num_hidden_layers\": 3", "model.decoder.num_hidden_layers 3")]
    [InlineData("num_key_value_heads\": 2", "num_key_value_heads\": 1", "num_key_value_heads 1")]
    [InlineData("head_size\": 16", "head_size\": 8", "head_size 8")]
    [InlineData("vocab_size\": 23", "vocab_size\": 24", "model.vocab_size 24")]
    public void GenAiConfigMustAgreeWithTheGraph(string from, string to, string named)
    {
        using var dir = new TempDirectory();
        string path = Write(dir, Variant.GenAiSeqlensInputs);
        string cfg = Path.Combine(dir.Path, GenAiConfig.FileName);
        string text = File.ReadAllText(cfg);
        Assert.Contains(from, text);
        File.WriteAllText(cfg, text.Replace(from, to));
        var e = Assert.Throws<InvalidDataException>(() => TeacherSession.Open(dir.Path, Cpu()));
        Assert.Contains(named, e.Message);
        Assert.Contains(cfg, e.Message);
        Assert.Contains(path, e.Message);
    }

    [Theory]
    [InlineData(", \"sliding_window\": { \"window_size\": 4 }", "model.decoder.sliding_window")]
    [InlineData(", \"pipeline\": []", "model.decoder.pipeline")]
    public void GenAiKeysThatChangeTheGraphAreRefusedByName(string extra, string named)
    {
        var c = Config();
        using var dir = new TempDirectory();
        Write(dir, Variant.GenAiSeqlensInputs);
        string cfg = Path.Combine(dir.Path, GenAiConfig.FileName);
        File.WriteAllText(cfg, SignatureVariantTests.GenAiJson(c, extra));
        var e = Assert.Throws<InvalidDataException>(() => TeacherSession.Open(dir.Path, Cpu()));
        Assert.Contains(named, e.Message);
        Assert.Contains("is not supported", e.Message);
        Assert.Contains(cfg, e.Message);
        // a template without its layer placeholder
        File.WriteAllText(cfg, SignatureVariantTests.GenAiJson(c).Replace("present.%d.key", "present.key"));
        e = Assert.Throws<InvalidDataException>(() => TeacherSession.Open(dir.Path, Cpu()));
        Assert.Contains("model.decoder.outputs.present_key_names = \"present.key\"", e.Message);
        Assert.Contains("%d", e.Message);
    }

    [Fact]
    public void AMissingGenAiFileIsNamed()
    {
        var c = Config();
        using var dir = new TempDirectory();
        Write(dir, Variant.GenAiSeqlensInputs);
        File.WriteAllText(Path.Combine(dir.Path, GenAiConfig.FileName), SignatureVariantTests.GenAiJson(c).Replace("\"model.onnx\"", "\"model_q4.onnx\""));
        var e = Assert.Throws<FileNotFoundException>(() => TeacherSession.Open(dir.Path, Cpu()));
        Assert.Contains("model_q4.onnx", e.Message);
        Assert.Null(TeacherSession.FindModelFile(dir.Path));
    }

    [Theory]
    [InlineData(TensorElementType.Float16)]
    [InlineData(TensorElementType.BFloat16)]
    public void HalfToSingleMatchesTheReferenceOnEveryBitPattern(TensorElementType type)
    {
        // all 65 536 patterns, in a shuffled order (fresh each run) so that position does not matter
        var bits = Enumerable.Range(0, 1 << 16).Select(i => (ushort)i).OrderBy(_ => Random.Shared.Next()).ToArray();
        var bytes = new byte[bits.Length * 2];
        Buffer.BlockCopy(bits, 0, bytes, 0, bytes.Length);
        var got = new float[bits.Length];
        ElementConvert.ToSingle(bytes, type, got);
        for (int i = 0; i < bits.Length; i++)
        {
            float want = ElementConvert.ReferenceToSingle(bits[i], type);
            Assert.True(float.IsNaN(want) ? float.IsNaN(got[i]) : BitConverter.SingleToInt32Bits(want) == BitConverter.SingleToInt32Bits(got[i]),
                $"{type} 0x{bits[i]:X4}: {got[i]} vs {want}");
        }
        Assert.Equal(1f, ElementConvert.ReferenceToSingle(type == TensorElementType.Float16 ? (ushort)0x3C00 : (ushort)0x3F80, type));
        Assert.Equal("source", Assert.Throws<ArgumentException>(() => ElementConvert.ToSingle(new byte[3], type, new float[1])).ParamName);
        Assert.Equal("type", Assert.Throws<ArgumentOutOfRangeException>(() => ElementConvert.ToSingle(new byte[4], TensorElementType.Float, new float[1])).ParamName);
    }

    [Fact]
    public void TheEnginesOwnExportIsFedExactlyAsBefore()
    {
        // the session's call on the engine's export equals, bit for bit, a plain Run with the inputs it always fed
        // (input_ids, attention_mask of ones, position_ids 0..S−1, empty fp32 pasts, in the graph's order)
        var c = Config();
        using var dir = new TempDirectory();
        OnnxExporter.Export(c, RandomParameters(c, seed: 21), dir.Path);
        using var teacher = TeacherSession.Open(dir.Path, Cpu());
        long[] ids = [4, 8, 15, 16, 0, 9];
        float[] got = teacher.Forward(ids, 2, 3);

        using var so = new Microsoft.ML.OnnxRuntime.SessionOptions
        {
            GraphOptimizationLevel = Microsoft.ML.OnnxRuntime.GraphOptimizationLevel.ORT_ENABLE_ALL,
            ExecutionMode = Microsoft.ML.OnnxRuntime.ExecutionMode.ORT_SEQUENTIAL,
            InterOpNumThreads = 1,
            IntraOpNumThreads = 2,
        };
        using var raw = new Microsoft.ML.OnnxRuntime.InferenceSession(Path.Combine(dir.Path, OnnxExporter.ModelFile), so);
        var names = new List<string> { "input_ids", "attention_mask", "position_ids" };
        var values = new List<Microsoft.ML.OnnxRuntime.OrtValue>
        {
            Microsoft.ML.OnnxRuntime.OrtValue.CreateTensorValueFromMemory(ids, [2, 3]),
            Microsoft.ML.OnnxRuntime.OrtValue.CreateTensorValueFromMemory(new long[] { 1, 1, 1, 1, 1, 1 }, [2, 3]),
            Microsoft.ML.OnnxRuntime.OrtValue.CreateTensorValueFromMemory(new long[] { 0, 1, 2, 0, 1, 2 }, [2, 3]),
        };
        for (int l = 0; l < c.NumHiddenLayers; l++)
            foreach (string kind in new[] { "key", "value" })
            {
                names.Add($"past_key_values.{l}.{kind}");
                values.Add(Microsoft.ML.OnnxRuntime.OrtValue.CreateAllocatedTensorValue(Microsoft.ML.OnnxRuntime.OrtAllocator.DefaultInstance, TensorElementType.Float, [2, c.KvHeads, 0, c.HeadDim]));
            }
        using var run = new Microsoft.ML.OnnxRuntime.RunOptions();
        using var results = raw.Run(run, names, values, ["logits"]);
        float[] want = results[0].GetTensorDataAsSpan<float>().ToArray();
        foreach (var v in values) v.Dispose();
        Assert.Equal(want.Length, got.Length);
        for (int i = 0; i < want.Length; i++)
            Assert.True(BitConverter.SingleToInt32Bits(want[i]) == BitConverter.SingleToInt32Bits(got[i]), $"logit {i}: {got[i]} vs {want[i]}");
    }
}
